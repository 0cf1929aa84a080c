package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TopicPrefix starts every topic name on the wire: icn/<network_id>/<short>.
const TopicPrefix = "icn/"

// MaxTopicLen bounds a short topic name in bytes.
const MaxTopicLen = 128

// CheckTopic validates a short topic name such as "ledger:hours": 1 to 128
// bytes of UTF-8, printable, no whitespace and no '/'.
func CheckTopic(short string) error {
	if short == "" {
		return errors.New("topic name is empty")
	}
	if len(short) > MaxTopicLen {
		return fmt.Errorf("topic name is %d bytes; at most %d", len(short), MaxTopicLen)
	}
	if !utf8.ValidString(short) {
		return fmt.Errorf("topic name %q is not valid UTF-8", short)
	}
	for _, r := range short {
		switch {
		case r == '/':
			return fmt.Errorf("topic name %q contains '/'", short)
		case unicode.IsSpace(r) || !unicode.IsPrint(r):
			return fmt.Errorf("topic name %q contains whitespace or an unprintable character", short)
		}
	}
	return nil
}

// WireTopic is the GossipSub topic for a short name in a network.
func WireTopic(networkID, short string) string {
	return TopicPrefix + networkID + "/" + short
}

// Payload types every node knows. A node may register more (Config.Types).
const (
	TypeText   = "text/plain"               // valid UTF-8
	TypeJSON   = "application/json"         // one valid JSON value
	TypeBinary = "application/octet-stream" // any bytes
	// TypeAnnounce carries a node's heads for a topic (see announce.go); the
	// service consumes it and never delivers it to subscribers.
	TypeAnnounce = "icn/announce"
)

// PayloadCheck validates a payload of one type; a nil check accepts any bytes.
type PayloadCheck func(payload []byte) error

func builtinTypes() map[string]PayloadCheck {
	return map[string]PayloadCheck{
		TypeText: func(p []byte) error {
			if !utf8.Valid(p) {
				return errors.New("text/plain payload is not valid UTF-8")
			}
			return nil
		},
		TypeJSON: func(p []byte) error {
			if !json.Valid(p) {
				return errors.New("application/json payload is not valid JSON")
			}
			return nil
		},
		TypeBinary: nil,
		TypeAnnounce: func(p []byte) error {
			_, err := decodeAnnounce(p)
			return err
		},
	}
}

// types is the set of payload types a service accepts. It is fixed at New.
type types map[string]PayloadCheck

func newTypes(extra map[string]PayloadCheck) (types, error) {
	t := types(builtinTypes())
	for name, check := range extra {
		if err := checkTypeName(name); err != nil {
			return nil, err
		}
		if _, dup := t[name]; dup {
			return nil, fmt.Errorf("payload type %q is built in", name)
		}
		t[name] = check
	}
	return t, nil
}

// check validates a payload against its type: errUnknownType if the type is
// not registered.
func (t types) check(typ string, payload []byte) error {
	check, ok := t[typ]
	if !ok {
		return errUnknownType
	}
	if check != nil {
		return check(payload)
	}
	return nil
}

var errUnknownType = errors.New("unknown payload type")

// names lists the registered types, sorted.
func (t types) names() string {
	out := make([]string, 0, len(t))
	for n := range t {
		if n != TypeAnnounce {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
