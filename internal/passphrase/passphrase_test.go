package passphrase

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvironmentOrder(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devnull.Close()
	cases := []struct {
		vars map[string]string
		want string
		err  error
	}{
		{map[string]string{EnvVar: "primary", LegacyEnvVar: "legacy"}, "primary", nil},
		{map[string]string{LegacyEnvVar: "legacy"}, "legacy", nil},
		{map[string]string{EnvVar: "", LegacyEnvVar: "legacy"}, "legacy", nil},
		{map[string]string{}, "", ErrNoPassphrase},
	}
	for _, tc := range cases {
		var prompt bytes.Buffer
		s := Source{Getenv: env(tc.vars), Stdin: devnull, Prompt: &prompt}
		got, err := s.Get("Passphrase: ", true)
		require.ErrorIs(t, err, tc.err)
		require.Equal(t, tc.want, got)
		require.Empty(t, prompt.String(), "no prompt without a terminal")
	}
}

func TestNoStdinIsNoTerminal(t *testing.T) {
	_, err := Source{Getenv: env(nil), Prompt: &bytes.Buffer{}}.Get("p: ", false)
	require.ErrorIs(t, err, ErrNoPassphrase)
	require.Contains(t, err.Error(), EnvVar)
}

// The hint after a wrong passphrase names the variable it came from, and
// the other one when both are set or only the legacy one is.
func TestWrongHintNamesTheVariable(t *testing.T) {
	hint := func(vars map[string]string) string { return Source{Getenv: env(vars)}.WrongHint() }

	h := hint(map[string]string{LegacyEnvVar: "old"})
	require.Contains(t, h, "legacy "+LegacyEnvVar)
	require.Contains(t, h, EnvVar+" is not set")

	h = hint(map[string]string{EnvVar: "new", LegacyEnvVar: "old"})
	require.Contains(t, h, "came from "+EnvVar)
	require.Contains(t, h, LegacyEnvVar)

	h = hint(map[string]string{EnvVar: "same", LegacyEnvVar: "same"})
	require.Equal(t, "check "+EnvVar+"; the keystore was not changed", h)

	require.Contains(t, hint(nil), "you typed")
}
