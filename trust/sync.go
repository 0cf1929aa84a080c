package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"

	"github.com/intercooperative/icn/did"
)

// Summary is what a graph holds, per issuer, in a few bytes: the request of
// the one-round-trip catch-up. A requester sends its Summary; the responder
// answers with Missing(summary).
type Summary map[did.DID]IssuerDigest

// IssuerDigest sums up one issuer's edges: how many are held and the XOR of
// the SHA-256 of each one's block. The XOR does not depend on order, and any
// difference in any edge (another seq, another signature, one more or one
// less) changes it.
type IssuerDigest struct {
	Count  int
	Digest [sha256.Size]byte
}

// Summary returns the graph's summary. It costs one map entry per issuer:
// the digests are kept up to date by Add.
func (g *Graph) Summary() Summary {
	s := make(Summary, len(g.issuers))
	for iss, ie := range g.issuers {
		s[iss] = IssuerDigest{Count: len(ie.sorted), Digest: ie.digest}
	}
	return s
}

// Missing returns every attestation of each issuer whose digest differs
// from remote's (or that remote lacks), in (issuer, subject) order, at most
// limit of them (limit <= 0: no limit). Issuers remote has and this graph
// lacks are remote's to send. See MissingAfter to page through an answer
// cut by limit.
func (g *Graph) Missing(remote Summary, limit int) []*Attestation {
	out, _ := g.MissingAfter(remote, EdgeKey{}, limit)
	return out
}

// MissingAfter is Missing restricted to the edges after the key after (the
// last one of the previous page; the zero EdgeKey starts at the beginning),
// and reports whether the answer was cut by limit. An issuer with more edges
// than the limit differs until all of them have arrived, so without a
// cursor a requester would get the same first page again and again.
func (g *Graph) MissingAfter(remote Summary, after EdgeKey, limit int) ([]*Attestation, bool) {
	var out []*Attestation
	afterIssuer := keyOf(after.Issuer)
	start, _ := g.findIssuer(&afterIssuer)
	for _, ie := range g.order[start:] {
		if r, ok := remote[ie.id]; ok && r.Count == len(ie.sorted) && r.Digest == ie.digest {
			continue
		}
		for _, h := range ie.sorted {
			if !after.Issuer.IsZero() && h.a.Key().Compare(after) <= 0 {
				continue
			}
			if limit > 0 && len(out) == limit {
				return out, true
			}
			out = append(out, h.a)
		}
	}
	return out, false
}

// wireIssuerDigest is one issuer of an encoded Summary.
type wireIssuerDigest struct {
	_      struct{} `cbor:",toarray"`
	Issuer []byte
	Count  uint64
	Digest []byte
}

// Encode returns the canonical encoding of the summary: a CBOR array of
// [issuer key, count, digest], sorted by issuer key.
func (s Summary) Encode() ([]byte, error) {
	ws := make([]wireIssuerDigest, 0, len(s))
	for iss, d := range s {
		if iss.IsZero() || d.Count < 0 {
			return nil, fmt.Errorf("encode summary: issuer %q with count %d", iss, d.Count)
		}
		ws = append(ws, wireIssuerDigest{Issuer: iss.PublicKey(), Count: uint64(d.Count), Digest: d.Digest[:]})
	}
	slices.SortFunc(ws, func(a, b wireIssuerDigest) int { return bytes.Compare(a.Issuer, b.Issuer) })
	return wire.enc.Marshal(ws)
}

// DecodeSummary parses an encoded summary strictly: canonical form,
// issuers sorted and unique, each a DID, at most maxIssuers of them. Errors
// wrap ErrMalformed.
func DecodeSummary(b []byte, maxIssuers int) (Summary, error) {
	// An issuer takes 1 + 34 + 1..9 + 34 bytes.
	if maxIssuers < 0 || len(b) > 9+maxIssuers*78 {
		return nil, fmt.Errorf("%w: summary of %d bytes is larger than %d issuers can be", ErrMalformed, len(b), maxIssuers)
	}
	var ws []wireIssuerDigest
	if err := wire.summaryDec.Unmarshal(b, &ws); err != nil {
		return nil, fmt.Errorf("%w: summary: %v", ErrMalformed, err)
	}
	if len(ws) > maxIssuers {
		return nil, fmt.Errorf("%w: summary of %d issuers, at most %d", ErrMalformed, len(ws), maxIssuers)
	}
	s := make(Summary, len(ws))
	for i, w := range ws {
		if i > 0 && bytes.Compare(ws[i-1].Issuer, w.Issuer) >= 0 {
			return nil, fmt.Errorf("%w: summary issuers are not sorted and unique", ErrMalformed)
		}
		if len(w.Issuer) != ed25519.PublicKeySize || len(w.Digest) != sha256.Size || w.Count > math.MaxInt32 {
			return nil, fmt.Errorf("%w: summary issuer %d: bad key, digest or count", ErrMalformed, i)
		}
		iss, err := did.FromPublicKey(w.Issuer)
		if err != nil {
			return nil, fmt.Errorf("%w: summary issuer %d: %v", ErrMalformed, i, err)
		}
		s[iss] = IssuerDigest{Count: int(w.Count), Digest: [sha256.Size]byte(w.Digest)}
	}
	again, err := s.Encode()
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: summary not in canonical form", ErrMalformed)
	}
	return s, nil
}
