// Package edverify checks Ed25519 signatures (RFC 8032 pure Ed25519, with
// exactly the checks crypto/ed25519.Verify makes) about twice as fast as
// crypto/ed25519 for public keys that sign again and again, by precomputing
// tables for each key once.
//
// # Why it is faster, and why the answer is the same
//
// A verifier computes R' = [S]B - [k]A and compares its encoding with the
// signature's R (the cofactorless equation). crypto/ed25519 computes the
// two scalar multiples together, with about 253 point doublings shared
// between them. Here both scalars are cut into eight 32-bit pieces,
//
//	S = sum of s_j * 2^(32j),   k = sum of k_j * 2^(32j),   j = 0..7,
//
// and R' is computed as sum of [s_j](2^(32j) B) - [k_j](2^(32j) A) over
// sixteen bases whose odd multiples are in tables: the basepoint's once per
// Verifier, the public key's once per Key. The doublings drop from 253 to
// 33, the additions stay about the same.
//
// The pieces add up to S and k exactly, as integers, and 2^(32j) A is
// computed by doubling A, so R' is the same group element crypto/ed25519
// computes, for every input, including public keys with a small-order
// component. This is not batch verification: every signature is checked on
// its own, with the cofactorless equation, so it accepts and refuses exactly
// what crypto/ed25519 does (the tests and a fuzz target compare the two).
//
// VerifyPoint checks a signature the way crypto/ed25519 computes it, with
// only the key's point decompressed ahead, for keys without tables; both
// share the checks and hashing every verification starts with.
//
// The point formulas are those of filippo.io/edwards25519 (BSD-3-Clause,
// Copyright 2009 The Go Authors), on its public field arithmetic.
package edverify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

const (
	pieces   = 8  // scalars are cut into this many pieces
	pieceLen = 32 // bits per piece
	nafLen   = pieceLen + 1
	wBase    = 8 // NAF width for the basepoint: 64 odd multiples per base
	wKey     = 5 // NAF width for keys: 8 odd multiples per base
)

// point is a point in extended coordinates: x = X/Z, y = Y/Z, xy = T/Z.
type point struct{ X, Y, Z, T field.Element }

// p1xp1 is the completed form the addition and doubling formulas produce.
type p1xp1 struct{ X, Y, Z, T field.Element }

// p2 is a point in projective coordinates: x = X/Z, y = Y/Z.
type p2 struct{ X, Y, Z field.Element }

// affine is a table entry: (y+x, y-x, 2dxy), Z = 1.
type affine struct{ YplusX, YminusX, T2d field.Element }

// Verifier holds the basepoint's tables. It is read-only after
// NewVerifier and safe for concurrent use.
type Verifier struct {
	d2   field.Element // 2d, d the curve constant
	base [pieces][1 << (wBase - 2)]affine
}

// Key is a public key with its tables. It is read-only after Prepare and
// safe for concurrent use. It holds about 7.5 KiB.
type Key struct {
	pub    [ed25519.PublicKeySize]byte
	minusA [pieces][1 << (wKey - 2)]affine // odd multiples of -2^(32j) A
}

// NewVerifier computes the basepoint's tables (512 points, about a
// millisecond).
func NewVerifier() *Verifier {
	v := &Verifier{}
	d, err := new(field.Element).SetBytes([]byte{
		0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75,
		0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00,
		0x98, 0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c,
		0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52})
	if err != nil {
		panic(err) // a constant
	}
	v.d2.Add(d, d)
	var b point
	b.set(edwards25519.NewGeneratorPoint())
	for j := range v.base {
		v.oddMultiples(v.base[j][:], &b)
		b.times2k(pieceLen)
	}
	return v
}

// Prepare decompresses a public key and computes its tables (about five
// crypto/ed25519 checks' worth of work). It fails for a 32-byte string that is
// not a point, as crypto/ed25519.Verify refuses every signature by such a
// key.
func (v *Verifier) Prepare(pub []byte) (*Key, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("edverify: public key is not 32 bytes")
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	k := &Key{pub: [ed25519.PublicKeySize]byte(pub)}
	var m point
	m.set(new(edwards25519.Point).Negate(a))
	for j := range k.minusA {
		v.oddMultiples(k.minusA[j][:], &m)
		m.times2k(pieceLen)
	}
	return k, nil
}

// Verify reports whether sig is a valid signature of msg by key, exactly as
// crypto/ed25519.Verify(key's public key, msg, sig) would.
func (v *Verifier) Verify(key *Key, msg, sig []byte) bool {
	k, s, ok := scalars(key.pub[:], msg, sig)
	if !ok {
		return false
	}
	var r p2
	v.combine(&r, k.Bytes(), key, s.Bytes())
	var enc [32]byte
	return bytes.Equal(sig[:32], r.encode(&enc))
}

// VerifyPoint is Verify for a key without tables: minusA is the negated
// point of pub, decompressed once by the caller. It computes [S]B - [k]A as
// crypto/ed25519 does, with filippo.io/edwards25519.
func VerifyPoint(minusA *edwards25519.Point, pub, msg, sig []byte) bool {
	k, s, ok := scalars(pub, msg, sig)
	if !ok {
		return false
	}
	r := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, s)
	return bytes.Equal(sig[:32], r.Bytes())
}

// scalars makes the checks every verification starts with (signature
// length, the top bits of S, S canonical) and returns k = H(R || A || msg)
// reduced, and S.
func scalars(pub, msg, sig []byte) (k, s *edwards25519.Scalar, ok bool) {
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return nil, nil, false
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(pub)
	h.Write(msg)
	var digest [sha512.Size]byte
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		return nil, nil, false
	}
	s, err = edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return nil, nil, false
	}
	return k, s, true
}

// combine sets r = [s]B - [k]A, k and s little-endian and below 2^256.
func (v *Verifier) combine(r *p2, k []byte, key *Key, s []byte) {
	var kNaf, sNaf [pieces][nafLen]int8
	top := -1
	for j := 0; j < pieces; j++ {
		top = max(top, naf(&kNaf[j], k[4*j:4*j+4], wKey), naf(&sNaf[j], s[4*j:4*j+4], wBase))
	}
	var acc point
	var sum p1xp1
	r.identity()
	for i := top; i >= 0; i-- {
		sum.double(r)
		for j := 0; j < pieces; j++ {
			if d := kNaf[j][i]; d != 0 {
				acc.fromP1xP1(&sum)
				sum.addDigit(&acc, key.minusA[j][:], d)
			}
			if d := sNaf[j][i]; d != 0 {
				acc.fromP1xP1(&sum)
				sum.addDigit(&acc, v.base[j][:], d)
			}
		}
		r.fromP1xP1(&sum)
	}
}

// naf writes the width-w non-adjacent form of the 32-bit little-endian
// piece: odd digits below 2^(w-1) in magnitude, each followed by at least
// w-1 zeros, summing (digit * 2^i) to the piece. It returns the highest
// nonzero position, or -1.
func naf(out *[nafLen]int8, piece []byte, w uint) int {
	x := uint64(piece[0]) | uint64(piece[1])<<8 | uint64(piece[2])<<16 | uint64(piece[3])<<24
	top := -1
	for i := 0; x != 0; i++ {
		if x&1 != 0 {
			d := int64(x & (1<<w - 1))
			if d >= 1<<(w-1) {
				d -= 1 << w
			}
			out[i] = int8(d)
			x = uint64(int64(x) - d)
			top = i
		}
		x >>= 1
	}
	return top
}

// oddMultiples fills t with p, 3p, 5p, ... in affine form.
func (v *Verifier) oddMultiples(t []affine, p *point) {
	var twoP, cur point
	var two affine
	var pp p2
	var sum p1xp1
	pp.fromPoint(p)
	sum.double(&pp)
	twoP.fromP1xP1(&sum)
	v.toAffine(&two, &twoP)
	cur = *p
	for i := range t {
		v.toAffine(&t[i], &cur)
		sum.addAffine(&cur, &two, false)
		cur.fromP1xP1(&sum)
	}
}

// toAffine converts p for a table.
func (v *Verifier) toAffine(a *affine, p *point) {
	var zInv field.Element
	zInv.Invert(&p.Z)
	a.YplusX.Add(&p.Y, &p.X)
	a.YminusX.Subtract(&p.Y, &p.X)
	a.T2d.Multiply(&p.T, &v.d2)
	a.YplusX.Multiply(&a.YplusX, &zInv)
	a.YminusX.Multiply(&a.YminusX, &zInv)
	a.T2d.Multiply(&a.T2d, &zInv)
}

// set copies an edwards25519 point.
func (p *point) set(q *edwards25519.Point) {
	x, y, z, t := q.ExtendedCoordinates()
	p.X, p.Y, p.Z, p.T = *x, *y, *z, *t
}

// times2k sets p = 2^k p.
func (p *point) times2k(k int) {
	var pp p2
	var sum p1xp1
	pp.fromPoint(p)
	for i := 0; i < k; i++ {
		sum.double(&pp)
		pp.fromP1xP1(&sum)
	}
	p.fromP1xP1(&sum) // the last doubling, with T
}

func (r *p2) identity() {
	r.X.Zero()
	r.Y.One()
	r.Z.One()
}

func (r *p2) fromPoint(p *point) {
	r.X, r.Y, r.Z = p.X, p.Y, p.Z
}

func (r *p2) fromP1xP1(p *p1xp1) {
	r.X.Multiply(&p.X, &p.T)
	r.Y.Multiply(&p.Y, &p.Z)
	r.Z.Multiply(&p.Z, &p.T)
}

// encode is the RFC 8032 encoding: y, with the sign of x in the top bit.
func (r *p2) encode(buf *[32]byte) []byte {
	var zInv, x, y field.Element
	zInv.Invert(&r.Z)
	x.Multiply(&r.X, &zInv)
	y.Multiply(&r.Y, &zInv)
	copy(buf[:], y.Bytes())
	buf[31] |= byte(x.IsNegative() << 7)
	return buf[:]
}

func (p *point) fromP1xP1(q *p1xp1) {
	p.X.Multiply(&q.X, &q.T)
	p.Y.Multiply(&q.Y, &q.Z)
	p.Z.Multiply(&q.Z, &q.T)
	p.T.Multiply(&q.X, &q.Y)
}

// double sets v = 2p.
func (v *p1xp1) double(p *p2) {
	var xx, yy, zz2, xPlusYSq field.Element
	xx.Square(&p.X)
	yy.Square(&p.Y)
	zz2.Square(&p.Z)
	zz2.Add(&zz2, &zz2)
	xPlusYSq.Add(&p.X, &p.Y)
	xPlusYSq.Square(&xPlusYSq)
	v.Y.Add(&yy, &xx)
	v.Z.Subtract(&yy, &xx)
	v.X.Subtract(&xPlusYSq, &v.Y)
	v.T.Subtract(&zz2, &v.Z)
}

// addDigit sets v = p + d q, for an odd digit d and t holding q, 3q, 5q, ...
func (v *p1xp1) addDigit(p *point, t []affine, d int8) {
	if d < 0 {
		v.addAffine(p, &t[-d/2], true)
	} else {
		v.addAffine(p, &t[d/2], false)
	}
}

// addAffine sets v = p + q, or p - q when neg.
func (v *p1xp1) addAffine(p *point, q *affine, neg bool) {
	var yPlusX, yMinusX, pp, mm, tt2d, z2 field.Element
	yPlusX.Add(&p.Y, &p.X)
	yMinusX.Subtract(&p.Y, &p.X)
	if neg { // -q swaps y+x and y-x and negates 2dxy
		pp.Multiply(&yPlusX, &q.YminusX)
		mm.Multiply(&yMinusX, &q.YplusX)
	} else {
		pp.Multiply(&yPlusX, &q.YplusX)
		mm.Multiply(&yMinusX, &q.YminusX)
	}
	tt2d.Multiply(&p.T, &q.T2d)
	z2.Add(&p.Z, &p.Z)
	v.X.Subtract(&pp, &mm)
	v.Y.Add(&pp, &mm)
	if neg {
		v.Z.Subtract(&z2, &tt2d)
		v.T.Add(&z2, &tt2d)
	} else {
		v.Z.Add(&z2, &tt2d)
		v.T.Subtract(&z2, &tt2d)
	}
}
