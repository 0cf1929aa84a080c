package discovery

import (
	"errors"
	"fmt"
	"strings"

	record "github.com/libp2p/go-libp2p-record"

	"github.com/intercooperative/icn/did"
)

// DIDNamespace is the DHT record namespace of DID binding records.
const DIDNamespace = "icn-did"

// DIDRecordKey is the DHT key under which d's binding is published.
func DIDRecordKey(d did.DID) string { return "/" + DIDNamespace + "/" + d.String() }

// didFromKey parses the DID out of a record key.
func didFromKey(key string) (did.DID, error) {
	ns, rest, ok := strings.Cut(strings.TrimPrefix(key, "/"), "/")
	if !ok || ns != DIDNamespace {
		return did.DID{}, fmt.Errorf("key %q is not in the /%s namespace", key, DIDNamespace)
	}
	return did.Parse(rest)
}

// DIDValidator validates DID binding records: the value must be a binding
// signed by the DID named in the key. Of several valid records the newest
// binding wins (higher seq, then later created_at, then larger peer ID), so
// every node selects the same one.
type DIDValidator struct{}

var _ record.Validator = DIDValidator{}

// Validate checks one record.
func (DIDValidator) Validate(key string, value []byte) error {
	d, err := didFromKey(key)
	if err != nil {
		return err
	}
	bd, err := did.UnmarshalBinding(value)
	if err != nil {
		return fmt.Errorf("record for %s: %w", d, err)
	}
	if bd.DID != d {
		return fmt.Errorf("record under %s is signed for %s", d, bd.DID)
	}
	return nil
}

// Select returns the index of the newest valid binding.
func (v DIDValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestBD did.Binding
	for i, val := range values {
		if v.Validate(key, val) != nil {
			continue
		}
		bd, _ := did.UnmarshalBinding(val)
		if best < 0 || bd.Newer(bestBD) {
			best, bestBD = i, bd
		}
	}
	if best < 0 {
		return 0, errors.New("no valid DID binding record")
	}
	return best, nil
}
