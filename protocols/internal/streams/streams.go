// Package streams owns the serving side that the request/response
// protocols share: a stream handler whose streams are each answered under
// the caller's context, and a Stop that removes the handler, resets what
// arrives after it, and waits for the streams being answered.
package streams

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Server is one protocol's registered handler.
type Server struct {
	h  host.Host
	id protocol.ID

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// Serve registers handle for id on h; each stream is handled under ctx (so
// the end of ctx is the caller's way to cut the streams short).
func Serve(ctx context.Context, h host.Host, id protocol.ID, handle func(context.Context, network.Stream)) *Server {
	s := &Server{h: h, id: id}
	h.SetStreamHandler(id, func(st network.Stream) {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			st.Reset()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		handle(ctx, st)
	})
	return s
}

// Stop removes the handler and waits for the streams being handled; end
// their context first, or Stop waits for them to finish on their own.
func (s *Server) Stop() {
	s.h.RemoveStreamHandler(s.id)
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
}
