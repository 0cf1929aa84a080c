// Package discovery owns how ICN nodes find each other beyond one link: a
// Kademlia DHT under the /icn protocol prefix, kept populated by re-dialling
// known and bootstrap peers with backoff whenever its routing table runs
// empty, and DID binding records published in it under the "icn-did"
// namespace with their own validator.
package discovery

// DHT is the node's Kademlia DHT.
type DHT struct{}

// RoutingTableSize is the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return 0 }
