// Package passphrase owns how icnd and icnctl obtain the keystore passphrase:
// ICN_KEYSTORE_PASSPHRASE, else the legacy ICN_PASSPHRASE, else a prompt on
// the terminal. With neither a variable nor a terminal it fails at once with
// an error that says what to set; it never waits for input that cannot come.
package passphrase

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Environment variables, in the order they are read.
const (
	EnvVar       = "ICN_KEYSTORE_PASSPHRASE"
	LegacyEnvVar = "ICN_PASSPHRASE"
)

// ErrNoPassphrase means no variable was set and there is no terminal to ask on.
var ErrNoPassphrase = errors.New("no passphrase: " + EnvVar + " is not set and standard input is not a terminal")

// ErrMismatch means the two prompted entries differed.
var ErrMismatch = errors.New("the two passphrases do not match")

// ErrEmpty means an empty passphrase was given.
var ErrEmpty = errors.New("the passphrase is empty")

// Source is where a passphrase can come from. The zero value is not usable;
// use FromProcess.
type Source struct {
	Getenv func(string) string
	Stdin  *os.File
	Prompt io.Writer // where prompts go (stderr)
}

// FromProcess reads this process's environment, stdin and stderr.
func FromProcess() Source {
	return Source{Getenv: os.Getenv, Stdin: os.Stdin, Prompt: os.Stderr}
}

// FromEnv returns the passphrase from the environment, or "" and false.
func (s Source) FromEnv() (string, bool) {
	for _, v := range []string{EnvVar, LegacyEnvVar} {
		if p := s.Getenv(v); p != "" {
			return p, true
		}
	}
	return "", false
}

// Get returns the passphrase. When it has to prompt and confirm is true, it
// asks twice and requires both entries to match (used when creating a keystore).
func (s Source) Get(prompt string, confirm bool) (string, error) {
	if p, ok := s.FromEnv(); ok {
		return p, nil
	}
	if s.Stdin == nil || !term.IsTerminal(int(s.Stdin.Fd())) {
		return "", ErrNoPassphrase
	}
	p, err := s.read(prompt)
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", ErrEmpty
	}
	if confirm {
		again, err := s.read("Repeat the passphrase: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", ErrMismatch
		}
	}
	return p, nil
}

func (s Source) read(prompt string) (string, error) {
	fmt.Fprint(s.Prompt, prompt)
	b, err := term.ReadPassword(int(s.Stdin.Fd()))
	fmt.Fprintln(s.Prompt)
	if err != nil {
		return "", fmt.Errorf("read passphrase from the terminal: %w", err)
	}
	return string(b), nil
}

// WrongHint is the hint to give when the keystore refused the passphrase
// from s. It names where the passphrase came from, and the other variable
// when that is what explains it: a stale legacy ICN_PASSPHRASE while
// ICN_KEYSTORE_PASSPHRASE is unset, or an ICN_KEYSTORE_PASSPHRASE that
// hides a different ICN_PASSPHRASE.
func (s Source) WrongHint() string {
	const kept = "; the keystore was not changed"
	primary, legacy := s.Getenv(EnvVar), s.Getenv(LegacyEnvVar)
	switch {
	case primary != "" && legacy != "" && legacy != primary:
		return "the passphrase came from " + EnvVar + ", which is read before " + LegacyEnvVar +
			" (also set, to something else): check " + EnvVar + ", or unset it if " + LegacyEnvVar + " holds the right one" + kept
	case primary != "":
		return "check " + EnvVar + kept
	case legacy != "":
		return "the passphrase came from the legacy " + LegacyEnvVar + " (" + EnvVar + " is not set): check it, " +
			"or set the right one in " + EnvVar + ", which is read first" + kept
	}
	return "check the passphrase you typed" + kept
}
