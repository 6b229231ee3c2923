package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Serve serves the metrics g gathers at /metrics on ln, the opt-in metrics
// listener (metrics.listen, --metrics), and with pprof also Go's profiler
// under /debug/pprof/ (metrics.pprof, --pprof), until ctx ends. Then it
// stops accepting and lets requests in flight finish within drain. It
// closes ln and returns nil after a shutdown, or why serving failed. The
// caller opens ln (port 0 works: read the address back from ln) so that a
// listener in use fails before anything else starts. log, when nil,
// discards.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer, pprofOn bool, drain time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g))
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics listening", "address", ln.Addr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(drain, time.Millisecond))
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	cancel()
	<-stopped
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("policyd: metrics listener: %w", err)
	}
	return nil
}
