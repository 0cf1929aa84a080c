package node

import "context"

// newMDNS returns the mDNS discovery service for the stack, or nil when
// network.mdns_enabled is false.
// TODO(mdns helper): implement with protocols/discovery/mdns.
func newMDNS(deps stackDeps, st *netStack) (interface {
	Run(ctx context.Context) error
	Close() error
}, error) {
	return nil, nil
}
