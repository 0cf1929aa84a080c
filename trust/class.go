package trust

import (
	"fmt"
	"strings"
)

// Class is a band of scores that policy gates on.
type Class int

// Classes, lowest first: isolated < 0.1 <= known < 0.4 <= partner < 0.7 <=
// federated.
const (
	Isolated Class = iota
	Known
	Partner
	Federated
)

// The lowest score of each class above Isolated.
const (
	KnownAt     = 0.1
	PartnerAt   = 0.4
	FederatedAt = 0.7
)

// ClassOf is the class of a score.
func ClassOf(score float64) Class {
	switch {
	case score >= FederatedAt:
		return Federated
	case score >= PartnerAt:
		return Partner
	case score >= KnownAt:
		return Known
	}
	return Isolated // NaN included
}

// MinScore is the lowest score of the class.
func (c Class) MinScore() float64 {
	switch c {
	case Known:
		return KnownAt
	case Partner:
		return PartnerAt
	case Federated:
		return FederatedAt
	}
	return 0
}

// String is the class's name: "isolated", "known", "partner" or
// "federated".
func (c Class) String() string {
	switch c {
	case Isolated:
		return "isolated"
	case Known:
		return "known"
	case Partner:
		return "partner"
	case Federated:
		return "federated"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// ParseClass parses a class name (ASCII case-insensitive).
func ParseClass(s string) (Class, error) {
	for c := Isolated; c <= Federated; c++ {
		if strings.EqualFold(s, c.String()) {
			return c, nil
		}
	}
	return Isolated, fmt.Errorf("unknown trust class %q: use isolated, known, partner or federated", echo(s))
}

// MarshalText is the class's name, for JSON and TOML.
func (c Class) MarshalText() ([]byte, error) {
	if c < Isolated || c > Federated {
		return nil, fmt.Errorf("unknown trust class %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText parses a class name with ParseClass.
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
