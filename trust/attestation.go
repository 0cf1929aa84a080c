// Package trust is the pure core of ICN's trust graph: DID-signed
// attestations ("issuer trusts subject this much"), their canonical encoding,
// a graph that keeps the newest attestation per (issuer, subject) and
// summarises itself for one-round-trip catch-up, and the score each node
// computes from its own point of view: a capacity-bounded flow seeded at the
// node, so that the trust a region of Sybils can gather is bounded by the
// attestations into it, whatever its size. Scores map to classes (isolated,
// known, partner, federated) that the node's policy gates on.
//
// Like the ledger core it does no I/O: no network, no disk, no clock (every
// function that needs the time takes it), and every result is deterministic.
// docs/trust.md documents the wire format and the scoring rule.
package trust

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/intercooperative/icn/did"
)

// Limits on one attestation.
const (
	// MaxSize bounds an encoded attestation; the largest valid one is
	// about 450 bytes.
	MaxSize = 1 << 10
	// MaxLabels bounds the labels of one attestation.
	MaxLabels = 8
	// MaxLabelLen bounds one label, in bytes.
	MaxLabelLen = 32
	// MaxBP is the score 1.0 in basis points.
	MaxBP = 10000
	// attestationVersion is the only encoding version understood.
	attestationVersion = 1
	signDomain         = "icn-trust-attestation-v1\n"
	// maxUnix is 9999-12-31T23:59:59Z, the last second a time may name.
	maxUnix = 253402300799
)

// Attestation says how much its issuer trusts its subject. The issuer signs
// it with its DID key; per (issuer, subject) the highest Seq wins, and a
// revocation is an attestation with Score 0.
type Attestation struct {
	Issuer, Subject did.DID
	// Score is in [0, 1] and a whole number of basis points (bp/10000, see
	// ScoreToBP): the wire carries the integer, never a float.
	Score float64
	// Labels are at most MaxLabels, each 1..MaxLabelLen bytes of
	// [a-z0-9:_.-], sorted and unique (NormalizeLabels makes them so).
	Labels []string
	// IssuedAt is the issuer's clock, whole seconds (informational: Seq
	// orders an edge's attestations).
	IssuedAt time.Time
	// ExpiresAt is when the attestation stops counting; zero means never.
	// Whole seconds, after IssuedAt.
	ExpiresAt time.Time
	// Seq is > 0; the highest per (issuer, subject) wins.
	Seq uint64
	// Signature is Ed25519 by the issuer's DID key over SigningBytes.
	Signature []byte
}

// EdgeKey names an edge of the graph: one per (issuer, subject).
type EdgeKey struct{ Issuer, Subject did.DID }

// Key is the attestation's edge.
func (a *Attestation) Key() EdgeKey { return EdgeKey{a.Issuer, a.Subject} }

// Compare orders edge keys by issuer key bytes, then subject key bytes: the
// order of Graph.Edges and Graph.All.
func (k EdgeKey) Compare(o EdgeKey) int {
	if c := compareDID(k.Issuer, o.Issuer); c != 0 {
		return c
	}
	return compareDID(k.Subject, o.Subject)
}

// Expired reports whether a has stopped counting at now (ExpiresAt is set
// and not after now).
func (a *Attestation) Expired(now time.Time) bool {
	return !a.ExpiresAt.IsZero() && !now.Before(a.ExpiresAt)
}

// Live reports whether a carries trust at now: not expired and score > 0.
func (a *Attestation) Live(now time.Time) bool { return a.Score > 0 && !a.Expired(now) }

// keyOf is the 32 key bytes of a DID (no allocation: PublicKey inlines).
func keyOf(d did.DID) (k [ed25519.PublicKeySize]byte) {
	copy(k[:], d.PublicKey())
	return k
}

func compareDID(a, b did.DID) int {
	ka, kb := keyOf(a), keyOf(b)
	return bytes.Compare(ka[:], kb[:])
}

// ScoreToBP converts a score to basis points. It refuses a score outside
// [0, 1], NaN, and one that is not a whole number of basis points (more than
// four decimals), so that the conversion is exact both ways:
// BPToScore(ScoreToBP(s)) == s. Every decimal with at most four places, as
// parsed by strconv.ParseFloat, converts.
func ScoreToBP(s float64) (uint16, error) {
	if math.IsNaN(s) || s < 0 || s > 1 {
		return 0, ruleErr("score %v is outside [0, 1]", s)
	}
	bp := uint16(math.Round(s * MaxBP))
	if float64(bp)/MaxBP != s {
		return 0, ruleErr("score %v has more than four decimals: scores are whole basis points (0.0001)", s)
	}
	return bp, nil
}

// BPToScore converts basis points (at most MaxBP) to a score, bp/10000.
func BPToScore(bp uint16) (float64, error) {
	if bp > MaxBP {
		return 0, ruleErr("score %d bp exceeds %d (1.0)", bp, MaxBP)
	}
	return float64(bp) / MaxBP, nil
}

// Wire form: a CBOR map with small integer keys, core deterministic
// encoding (docs/trust.md has the table).
type wireAttestation struct {
	V         uint8    `cbor:"0,keyasint"`
	Issuer    []byte   `cbor:"1,keyasint"`
	Subject   []byte   `cbor:"2,keyasint"`
	Score     uint16   `cbor:"3,keyasint"`
	Labels    []string `cbor:"4,keyasint,omitempty"`
	IssuedAt  uint64   `cbor:"5,keyasint"`
	ExpiresAt uint64   `cbor:"6,keyasint,omitempty"`
	Seq       uint64   `cbor:"7,keyasint"`
	Signature []byte   `cbor:"8,keyasint,omitempty"`
}

// codec holds the CBOR modes; immutable after construction.
type codec struct {
	enc        cbor.EncMode
	dec        cbor.DecMode
	summaryDec cbor.DecMode
}

func newCodec() codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxArrayElements:  MaxLabels * 2,
		MaxMapPairs:       16,
		MaxNestedLevels:   4,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	// A summary's size is bounded by DecodeSummary before it is decoded.
	summaryDec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxArrayElements:  1 << 24,
		MaxNestedLevels:   4,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return codec{enc: enc, dec: dec, summaryDec: summaryDec}
}

// The CBOR modes are pure values built from constant options.
var wire = newCodec()

func (a *Attestation) toWire(withSig bool) (wireAttestation, error) {
	bp, err := ScoreToBP(a.Score)
	if err != nil {
		return wireAttestation{}, err
	}
	issued, err := unixSeconds("issued_at", a.IssuedAt)
	if err != nil {
		return wireAttestation{}, err
	}
	var expires uint64
	if !a.ExpiresAt.IsZero() {
		if expires, err = unixSeconds("expires_at", a.ExpiresAt); err != nil {
			return wireAttestation{}, err
		}
	}
	w := wireAttestation{V: attestationVersion, Issuer: a.Issuer.PublicKey(), Subject: a.Subject.PublicKey(),
		Score: bp, Labels: a.Labels, IssuedAt: issued, ExpiresAt: expires, Seq: a.Seq}
	if withSig {
		w.Signature = a.Signature
	}
	return w, nil
}

// unixSeconds is t in unix seconds: t must be set, after 1970 and whole
// seconds.
func unixSeconds(field string, t time.Time) (uint64, error) {
	switch {
	case t.IsZero():
		return 0, ruleErr("%s is not set", field)
	case t.Unix() <= 0:
		return 0, ruleErr("%s %s is not after 1970", field, t.UTC().Format(time.RFC3339))
	case t.Unix() > maxUnix:
		return 0, ruleErr("%s %s is after the year 9999", field, t.UTC().Format(time.RFC3339))
	case t.Nanosecond() != 0:
		return 0, ruleErr("%s %s is not a whole second (truncate it: t.Truncate(time.Second))", field, t.UTC().Format(time.RFC3339Nano))
	}
	return uint64(t.Unix()), nil
}

// SigningBytes is what the issuer signs: "icn-trust-attestation-v1\n" and
// the canonical encoding of the attestation without its signature.
func (a *Attestation) SigningBytes() ([]byte, error) {
	w, err := a.toWire(false)
	if err != nil {
		return nil, err
	}
	b, err := wire.enc.Marshal(w)
	if err != nil {
		return nil, err
	}
	return append([]byte(signDomain), b...), nil
}

// Encode returns the canonical encoding of the signed attestation: the
// block that is stored and gossiped.
func (a *Attestation) Encode() ([]byte, error) {
	w, err := a.toWire(true)
	if err != nil {
		return nil, err
	}
	return wire.enc.Marshal(w)
}

// Sign checks a's static rules, signs it with key (which must be the
// issuer's DID key), sets a.Signature and returns the block.
func Sign(a *Attestation, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign attestation: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), a.Issuer.PublicKey()) {
		return nil, fmt.Errorf("sign attestation: the key is not the key of issuer %s: sign with the issuer's DID key", a.Issuer)
	}
	if err := a.checkStatic(false); err != nil {
		return nil, err
	}
	msg, err := a.SigningBytes()
	if err != nil {
		return nil, err
	}
	a.Signature = ed25519.Sign(key, msg)
	return a.Encode()
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed attestation")

// ErrBadSignature is the error of an attestation not signed by its issuer.
var ErrBadSignature = errors.New("bad attestation signature")

// RuleError is a static rule an attestation breaks, in words.
type RuleError struct{ Reason string }

func (e *RuleError) Error() string { return e.Reason }

func ruleErr(format string, args ...any) error {
	return &RuleError{Reason: fmt.Sprintf(format, args...)}
}

// Decode parses a block strictly: at most MaxSize bytes, canonical CBOR only
// (re-encoding must give the same bytes), known fields only, a 64-byte
// signature, and the static rules (see Verify). It does not check the
// signature; Verify does. Every error wraps ErrMalformed (and the
// *RuleError, when a rule is broken).
func Decode(b []byte) (*Attestation, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxSize)
	}
	var w wireAttestation
	if err := wire.dec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.V != attestationVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, w.V, attestationVersion)
	}
	a := &Attestation{Labels: w.Labels, Seq: w.Seq, Signature: w.Signature}
	var err error
	if a.Issuer, err = did.FromPublicKey(w.Issuer); err != nil {
		return nil, fmt.Errorf("%w: issuer: %v", ErrMalformed, err)
	}
	if a.Subject, err = did.FromPublicKey(w.Subject); err != nil {
		return nil, fmt.Errorf("%w: subject: %v", ErrMalformed, err)
	}
	if a.Score, err = BPToScore(w.Score); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, t := range []struct {
		v   uint64
		dst *time.Time
	}{{w.IssuedAt, &a.IssuedAt}, {w.ExpiresAt, &a.ExpiresAt}} {
		if t.v > maxUnix {
			return nil, fmt.Errorf("%w: time %d is after the year 9999", ErrMalformed, t.v)
		}
		if t.v != 0 {
			*t.dst = time.Unix(int64(t.v), 0).UTC()
		}
	}
	if err := a.checkStatic(true); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	again, err := a.Encode()
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return a, nil
}

// Verify checks the static rules and the signature: issuer and subject are
// DIDs and differ, the score is whole basis points in [0, 1], the labels
// follow the label rules, IssuedAt is set, ExpiresAt (when set) is after
// it, both whole seconds, Seq > 0. A broken rule is a *RuleError; a
// signature that is missing or not the issuer's is ErrBadSignature.
func (a *Attestation) Verify() error {
	if err := a.checkStatic(false); err != nil {
		return err
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: the signature is %d bytes, want %d", ErrBadSignature, len(a.Signature), ed25519.SignatureSize)
	}
	msg, err := a.SigningBytes()
	if err != nil {
		return err
	}
	if !a.Issuer.Verify(msg, a.Signature) {
		return fmt.Errorf("%w: the attestation is not signed by its issuer %s", ErrBadSignature, a.Issuer)
	}
	return nil
}

// checkStatic checks the rules that need nothing but the attestation;
// withSig also requires a signature of the right length.
func (a *Attestation) checkStatic(withSig bool) error {
	switch {
	case a.Issuer.IsZero():
		return ruleErr("the attestation has no issuer")
	case a.Subject.IsZero():
		return ruleErr("the attestation has no subject")
	case a.Issuer == a.Subject:
		return ruleErr("%s attests itself: an issuer cannot attest its own DID", a.Issuer)
	case a.Seq == 0:
		return ruleErr("seq must be at least 1")
	}
	if _, err := ScoreToBP(a.Score); err != nil {
		return err
	}
	if err := CheckLabels(a.Labels); err != nil {
		return err
	}
	issued, err := unixSeconds("issued_at", a.IssuedAt)
	if err != nil {
		return err
	}
	if !a.ExpiresAt.IsZero() {
		expires, err := unixSeconds("expires_at", a.ExpiresAt)
		if err != nil {
			return err
		}
		if expires <= issued {
			return ruleErr("expires_at %s is not after issued_at %s", a.ExpiresAt.UTC().Format(time.RFC3339), a.IssuedAt.UTC().Format(time.RFC3339))
		}
	}
	if withSig && len(a.Signature) != ed25519.SignatureSize {
		return ruleErr("the signature is %d bytes, want %d", len(a.Signature), ed25519.SignatureSize)
	}
	return nil
}

// CheckLabel checks one label: 1..MaxLabelLen bytes of [a-z0-9:_.-].
func CheckLabel(l string) error {
	if l == "" || len(l) > MaxLabelLen {
		return ruleErr("label %q is %d bytes: labels are 1 to %d bytes", echo(l), len(l), MaxLabelLen)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == ':' || c == '_' || c == '.' || c == '-') {
			return ruleErr("label %q has %q: labels are lowercase letters, digits and : _ . -", echo(l), c)
		}
	}
	return nil
}

// CheckLabels checks a label list: at most MaxLabels, each valid, sorted
// and unique.
func CheckLabels(ls []string) error {
	if len(ls) > MaxLabels {
		return ruleErr("%d labels: at most %d", len(ls), MaxLabels)
	}
	for i, l := range ls {
		if err := CheckLabel(l); err != nil {
			return err
		}
		if i > 0 && ls[i-1] >= l {
			return ruleErr("labels must be sorted and unique (%q before %q): use NormalizeLabels", ls[i-1], l)
		}
	}
	return nil
}

// NormalizeLabels returns the labels sorted with duplicates removed, and an
// error if any label is invalid or there are more than MaxLabels.
func NormalizeLabels(ls []string) ([]string, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	out := slices.Compact(slices.Sorted(slices.Values(ls)))
	if err := CheckLabels(out); err != nil {
		return nil, err
	}
	return out, nil
}

// echo shortens s for an error message.
func echo(s string) string {
	const maxEcho = 40
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho-3] + "..."
}

// clone is a deep copy of a.
func (a *Attestation) clone() *Attestation {
	c := *a
	c.Labels = slices.Clone(a.Labels)
	c.Signature = slices.Clone(a.Signature)
	return &c
}
