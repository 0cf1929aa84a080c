package config

import (
	"fmt"
	"math"
	"strings"

	"github.com/intercooperative/icn/trust"
)

// Trust configures the trust graph's policy (docs/trust.md): whether trust
// gates who may connect, write to the ledger and gossip, and the per-peer
// gossip rate limit of each trust class.
type Trust struct {
	// Mode is "open" (every valid DID is accepted; trust only raises rate
	// limits and gossip scores) or "trusted" (the min_*_class keys gate).
	Mode string `toml:"mode"`
	// MinConnectClass, MinLedgerClass and MinGossipClass are the lowest
	// classes (isolated, known, partner, federated) allowed to stay
	// connected, to author ledger entries, and to have gossip delivered,
	// in trusted mode.
	MinConnectClass string `toml:"min_connect_class"`
	MinLedgerClass  string `toml:"min_ledger_class"`
	MinGossipClass  string `toml:"min_gossip_class"`
	// RateLimits are the per-peer gossip token buckets by class. In open
	// mode a peer gets at least [rate_limiting]'s bucket whatever its class.
	RateLimits TrustRateLimits `toml:"rate_limits"`
}

// TrustRateLimits holds one bucket per class.
type TrustRateLimits struct {
	Isolated  RateLimiting `toml:"isolated"`
	Known     RateLimiting `toml:"known"`
	Partner   RateLimiting `toml:"partner"`
	Federated RateLimiting `toml:"federated"`
}

// Trust modes.
const (
	TrustOpen    = "open"
	TrustTrusted = "trusted"
)

// TrustClassNames lists the classes, lowest first.
func TrustClassNames() []string {
	return []string{trust.Isolated.String(), trust.Known.String(), trust.Partner.String(), trust.Federated.String()}
}

// DefaultTrust is the [trust] section's defaults: open mode, "known" as the
// bar of trusted mode, and the reference implementation's tiers.
func DefaultTrust() Trust {
	return Trust{
		Mode:            TrustOpen,
		MinConnectClass: "known",
		MinLedgerClass:  "known",
		MinGossipClass:  "known",
		RateLimits: TrustRateLimits{
			Isolated:  RateLimiting{MessagesPerSecond: 10, Burst: 2},
			Known:     RateLimiting{MessagesPerSecond: 50, Burst: 10},
			Partner:   RateLimiting{MessagesPerSecond: 100, Burst: 20},
			Federated: RateLimiting{MessagesPerSecond: 200, Burst: 50},
		},
	}
}

func (t Trust) validate(minThreshold float64) error {
	switch t.Mode {
	case TrustOpen, TrustTrusted:
	default:
		return &Error{Key: "trust.mode", Reason: fmt.Sprintf("%q is not one of open, trusted", t.Mode)}
	}
	for key, v := range map[string]string{"trust.min_connect_class": t.MinConnectClass,
		"trust.min_ledger_class": t.MinLedgerClass, "trust.min_gossip_class": t.MinGossipClass} {
		if !validClass(v) {
			return &Error{Key: key, Reason: fmt.Sprintf("%q is not one of %s", v, strings.Join(TrustClassNames(), ", "))}
		}
	}
	for key, r := range map[string]RateLimiting{"isolated": t.RateLimits.Isolated, "known": t.RateLimits.Known,
		"partner": t.RateLimits.Partner, "federated": t.RateLimits.Federated} {
		if !(r.MessagesPerSecond > 0 && r.MessagesPerSecond <= 1e6) {
			return &Error{Key: "trust.rate_limits." + key + ".messages_per_second", Reason: fmt.Sprintf("%v is not above 0 and at most 1000000", r.MessagesPerSecond)}
		}
		if r.Burst < 1 || r.Burst > 1e6 {
			return &Error{Key: "trust.rate_limits." + key + ".burst", Reason: fmt.Sprintf("%d is not from 1 to 1000000", r.Burst)}
		}
	}
	if math.IsNaN(minThreshold) || minThreshold < 0 || minThreshold > 1 {
		return &Error{Key: "network.min_trust_threshold", Reason: fmt.Sprintf("%v is not from 0 to 1", minThreshold)}
	}
	return nil
}

func validClass(s string) bool {
	_, err := trust.ParseClass(s)
	return err == nil
}

// MinConnectScore is the lowest trust score allowed to stay connected in
// trusted mode: network.min_trust_threshold when set (the reference
// implementation's key), else where trust.min_connect_class starts.
func (c Config) MinConnectScore() float64 {
	if c.Network.MinTrustThreshold > 0 {
		return c.Network.MinTrustThreshold
	}
	cl, _ := trust.ParseClass(c.Trust.MinConnectClass)
	return cl.MinScore()
}
