package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
	reportingest "github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Round is one round of the side-by-side comparison: the same reports
// stored into a fresh database in batches, then POSTed one per request
// into another fresh database.
type Round struct {
	Batch, HTTP float64 // reports/s
	// BatchCPU and HTTPCPU are the process's CPU time (user + system,
	// all goroutines: on the HTTP path the clients' too) per report,
	// which moves less than reports/s when other work shares the
	// machine.
	BatchCPU, HTTPCPU time.Duration
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Compare runs rounds of the batch path (PutReports, c.Batch reports per
// transaction) against the HTTP receiver's path (c.HTTP clients POSTing
// one report each at a time over loopback to httpapi.Receiver, whose
// Ingester stores through sqlstore.GroupCommit on SQLite, as `mailsts
// serve` does), alternating so that both see the same machine load. The
// reports are built, and the POST bodies gzipped, before any timing;
// the HTTP time includes parsing each body, which the batch path is
// handed parsed.
func Compare(ctx context.Context, c Config, rounds int, out io.Writer) ([]Round, error) {
	now := time.Now().UTC()
	ins := make([]reports.Incoming, c.N)
	bodies := make([][]byte, c.N)
	for i := range ins {
		r := Synth(i)
		raw, err := tlsrpt.MarshalGzip(r)
		if err != nil {
			return nil, err
		}
		ins[i] = reports.Incoming{Report: r, Raw: raw, Source: reports.SourceHTTP, Origin: "bench", ReceivedAt: now, Problems: r.Problems(now)}
		bodies[i] = raw
	}
	var res []Round
	for round := range max(rounds, 1) {
		var rd Round
		var err error
		runtime.GC() // the reports just built are not the batch path's garbage
		if rd.Batch, rd.BatchCPU, err = compareBatch(ctx, c, ins); err != nil {
			return res, fmt.Errorf("round %d, batch: %w", round+1, err)
		}
		hc := c
		if round > 0 {
			hc.profile = nil // -cpuprofile: the first round's HTTP path
		}
		runtime.GC()
		if rd.HTTP, rd.HTTPCPU, err = compareHTTP(ctx, hc, bodies); err != nil {
			return res, fmt.Errorf("round %d, http: %w", round+1, err)
		}
		fmt.Fprintf(out, "round %d: batch %.0f reports/s (CPU %v/report), http %.0f reports/s (CPU %v/report), batch/http %.2f\n",
			round+1, rd.Batch, rd.BatchCPU.Round(time.Microsecond), rd.HTTP, rd.HTTPCPU.Round(time.Microsecond), rd.Batch/rd.HTTP)
		res = append(res, rd)
	}
	return res, nil
}

// freshStore opens c.DB emptied, with its own file or schema per path.
func freshStore(ctx context.Context, c Config, suffix string) (*store, error) {
	c.Reuse, c.Keep = false, false
	if sqlstore.IsPostgres(c.DB) {
		c.Schema += suffix
	} else {
		c.DB += suffix
	}
	return open(ctx, c)
}

func compareBatch(ctx context.Context, c Config, ins []reports.Incoming) (float64, time.Duration, error) {
	st, err := freshStore(ctx, c, "")
	if err != nil {
		return 0, 0, err
	}
	defer st.cleanup()
	defer st.Close()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < len(ins); i += max(c.Batch, 1) {
		if _, err := st.PutReports(ctx, ins[i:min(i+max(c.Batch, 1), len(ins))]); err != nil {
			return 0, 0, err
		}
	}
	if err := fold(ctx, st.Store); err != nil {
		return 0, 0, err
	}
	return float64(len(ins)) / time.Since(start).Seconds(), (cpuTime() - cpu) / time.Duration(len(ins)), nil
}

func compareHTTP(ctx context.Context, c Config, bodies [][]byte) (float64, time.Duration, error) {
	st, err := freshStore(ctx, c, "_http")
	if err != nil {
		return 0, 0, err
	}
	defer st.cleanup()
	defer st.Close()
	var put reports.Store = st.Store
	if !sqlstore.IsPostgres(c.DB) {
		put = &sqlstore.GroupCommit{Store: st.Store}
	}
	rc := &httpapi.Receiver{Ingester: &reportingest.Ingester{Store: put, DKIM: reportingest.DKIMOff}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/tlsrpt"
	if c.profile != nil {
		// The profile of the HTTP path only (-cpuprofile with -http).
		if err := pprof.StartCPUProfile(c.profile); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	clients := max(c.HTTP, 1)
	var post func(ctx context.Context, body []byte) error
	if c.StdClient {
		tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		post = stdPoster(&http.Client{Transport: tr, Timeout: time.Minute}, url)
	}
	next := make(chan []byte)
	g, gctx := errgroup.WithContext(ctx)
	start, cpu := time.Now(), cpuTime()
	for range clients {
		g.Go(func() error {
			post := post
			if post == nil {
				rp, err := dialPoster(gctx, ln.Addr().String())
				if err != nil {
					return err
				}
				defer rp.Close()
				post = rp.post
			}
			for body := range next {
				if err := post(gctx, body); err != nil {
					return err
				}
			}
			return nil
		})
	}
feed:
	for _, b := range bodies {
		select {
		case next <- b:
		case <-gctx.Done():
			break feed
		}
	}
	close(next)
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	if err := fold(ctx, st.Store); err != nil {
		return 0, 0, err
	}
	return float64(len(bodies)) / time.Since(start).Seconds(), (cpuTime() - cpu) / time.Duration(len(bodies)), nil
}

// stdPoster POSTs each body with net/http's Client.
func stdPoster(hc *http.Client, url string) func(context.Context, []byte) error {
	return func(ctx context.Context, body []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		return created(resp)
	}
}

// created checks that resp is 201 Created and closes its body.
func created(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// rawPoster is one keep-alive connection that POSTs bodies one at a
// time with a request written by hand: the load generator of the HTTP
// path (like wrk or h2load, not a client library), so that the clients
// take little of the CPU the receiver and the store share with them.
// net/http's Client cost about a tenth of the HTTP path's CPU (two
// goroutines per connection, a request and a header map per POST);
// -stdclient measures with it. The answer is read with
// http.ReadResponse, which checks it as net/http's Client would.
type rawPoster struct {
	conn net.Conn
	br   *bufio.Reader
	head []byte
}

func dialPoster(ctx context.Context, addr string) (*rawPoster, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawPoster{conn: conn, br: bufio.NewReader(conn)}, nil
}

func (p *rawPoster) Close() error { return p.conn.Close() }

// post sends body and waits for 201 Created.
func (p *rawPoster) post(_ context.Context, body []byte) error {
	p.conn.SetDeadline(time.Now().Add(time.Minute)) // as the Client's Timeout
	p.head = append(p.head[:0], "POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "+tlsrpt.MediaTypeGzip+"\r\nContent-Length: "...)
	p.head = strconv.AppendInt(p.head, int64(len(body)), 10)
	p.head = append(p.head, "\r\n\r\n"...)
	bufs := net.Buffers{p.head, body}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return err
	}
	return created(resp)
}

// printRange prints the range of each path's reports/s over the rounds.
func printRange(w io.Writer, rs []Round) {
	if len(rs) == 0 {
		return
	}
	lo, hi := rs[0], rs[0]
	rlo, rhi := rs[0].Batch/rs[0].HTTP, rs[0].Batch/rs[0].HTTP
	for _, r := range rs {
		lo.Batch, hi.Batch = min(lo.Batch, r.Batch), max(hi.Batch, r.Batch)
		lo.HTTP, hi.HTTP = min(lo.HTTP, r.HTTP), max(hi.HTTP, r.HTTP)
		lo.BatchCPU, hi.BatchCPU = min(lo.BatchCPU, r.BatchCPU), max(hi.BatchCPU, r.BatchCPU)
		lo.HTTPCPU, hi.HTTPCPU = min(lo.HTTPCPU, r.HTTPCPU), max(hi.HTTPCPU, r.HTTPCPU)
		rlo, rhi = min(rlo, r.Batch/r.HTTP), max(rhi, r.Batch/r.HTTP)
	}
	fmt.Fprintf(w, "%d rounds: batch %.0f-%.0f reports/s (CPU %v-%v/report), http %.0f-%.0f reports/s (CPU %v-%v/report), batch/http %.2f-%.2f\n",
		len(rs), lo.Batch, hi.Batch, lo.BatchCPU.Round(time.Microsecond), hi.BatchCPU.Round(time.Microsecond),
		lo.HTTP, hi.HTTP, lo.HTTPCPU.Round(time.Microsecond), hi.HTTPCPU.Round(time.Microsecond), rlo, rhi)
}
