// Package version owns the build's version string, stamped at link time.
package version

// Version is set with -ldflags "-X github.com/intercooperative/icn/internal/version.Version=v1.2.3".
// It is a variable only so the linker can set it; nothing assigns it at run time.
var Version = "0.1.0-dev"

// UserAgent is what the node announces over libp2p identify.
func UserAgent() string { return "icnd/" + Version }
