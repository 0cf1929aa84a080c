// Package configs holds the configuration files shipped with ICN. Only the
// development default is compiled in (for `icnd --dev`); the others are for
// operators to copy.
package configs

import _ "embed"

// Dev is the TOML used by `icnd --dev`.
//
//go:embed dev.toml
var Dev []byte

// DevPassphrase protects development keystores created by `icnd --dev`. It is
// public: anything it protects is not secret.
const DevPassphrase = "icn-dev-passphrase-NOT-SECRET"
