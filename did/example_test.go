package did_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
)

// Parse is strict: the exact prefix, base58btc, a 32-byte key that is a
// valid Ed25519 point.
func ExampleParse() {
	d, err := did.Parse("did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%x\n", d.PublicKey())

	_, err = did.Parse("did:icn:foo")
	fmt.Println(err)
	// Output:
	// d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
	// invalid DID "did:icn:foo": must start with "did:icn:z"
}

// A freshly generated identity uses its DID key as its node key, so the
// DID converts to the node's peer ID with no lookup, and back.
func ExampleDID_PeerID() {
	d, err := did.Parse("did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z")
	if err != nil {
		log.Fatal(err)
	}
	pid := d.PeerID()
	fmt.Println(pid)
	back, err := did.FromPeerID(pid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back == d)
	// Output:
	// 12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV
	// true
}

// A binding authorises a node key to speak for a DID. Anyone can verify it
// from the binding alone; any change to it breaks the signature.
func ExampleBinding_Verify() {
	// Fixed keys so the output is stable (RFC 8032 test keys); a real node
	// has them from its keystore (did.Identity).
	didSeed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	nodeSeed, _ := hex.DecodeString("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
	nodeKey, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(nodeSeed))
	if err != nil {
		log.Fatal(err)
	}
	pid, err := peer.IDFromPrivateKey(nodeKey)
	if err != nil {
		log.Fatal(err)
	}

	b, err := did.NewBinding(ed25519.NewKeyFromSeed(didSeed), pid, 1, time.Unix(1_700_000_000, 0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.DID, "->", b.PeerID)
	fmt.Println("verify:", b.Verify())

	// Received as JSON, a binding is parsed and verified in one step.
	data, err := b.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := did.UnmarshalBinding(data); err != nil {
		log.Fatal(err)
	}

	b.Seq = 2 // not what the DID key signed
	fmt.Println("verify:", b.Verify())
	// Output:
	// did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z -> 12D3KooWDwTirQce1RRKnasT5fPVFgzXCy6SiRgSwrwPGLC7zE91
	// verify: <nil>
	// verify: binding signature is not valid for did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z
}
