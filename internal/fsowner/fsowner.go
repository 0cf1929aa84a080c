// Package fsowner names who owns a file and who this process runs as, for
// the hints that follow a "permission denied": `sudo -u icn icnctl …`, or
// `sudo chown alice /var/lib/icn/identity.age`.
package fsowner

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Of returns the user owning path, or, when path itself cannot be looked at
// (a directory above it is closed to this process), the owner of the
// nearest directory above it that can; at is the path it looked at. owner
// is a user name, else a numeric uid; "" if nothing could be looked at.
func Of(path string) (owner, at string) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				return name(int(st.Uid)), p
			}
			return "", p
		}
		if parent := filepath.Dir(p); parent == p {
			return "", ""
		}
	}
}

// Current is the user this process runs as (its effective uid).
func Current() string { return name(os.Geteuid()) }

func name(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(uid)
}
