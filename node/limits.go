package node

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/intercooperative/icn/node/config"
)

// newResourceManager builds the libp2p resource manager from [limits].
// TODO(limits helper): apply cfg, log blocked resources by scope and limit.
func newResourceManager(cfg config.Limits, log *slog.Logger, m *netMetrics) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
}
