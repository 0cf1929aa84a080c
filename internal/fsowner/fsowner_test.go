package fsowner

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOfNamesTheOwner(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "identity.age")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	me, err := user.Current()
	require.NoError(t, err)

	owner, at := Of(f)
	require.Equal(t, me.Username, owner)
	require.Equal(t, f, at)
	require.Equal(t, me.Username, Current())

	// A path that does not exist: the nearest directory above it answers.
	owner, at = Of(filepath.Join(dir, "missing", "icnd.sock"))
	require.Equal(t, me.Username, owner)
	require.Equal(t, dir, at)
}

func TestOfOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no nobody user")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	f := filepath.Join(t.TempDir(), "identity.age")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	require.NoError(t, os.Chown(f, uid, gid))
	owner, _ := Of(f)
	require.Equal(t, "nobody", owner)
}
