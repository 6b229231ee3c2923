package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// floorClient is the floor of a cold lookup: exactly the work one needs and
// nothing else. The TXT query of _mta-sts.<domain> and the A query of
// mta-sts.<domain> go out together (one UDP socket each, as miekg/dns
// makes them), then one TCP connection, one TLS 1.3 handshake (X25519, the
// certificate verified for the policy host), one GET, no reuse, no cache,
// no store. It serves the socketmap protocol (-serve-floor) so that the
// benchmark measures it like the daemons: its process CPU per cold domain
// is the denominator of policyd's, and its latency the floor on a slow
// network.
type floorClient struct {
	dnsAddr string
	port    string
	tls     *tls.Config // ServerName set per lookup
	dns     dns.Client
}

func newFloorClient(dnsAddr, port, caFile string) (*floorClient, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &floorClient{
		dnsAddr: dnsAddr,
		port:    port,
		tls: &tls.Config{
			RootCAs:          roots,
			MinVersion:       tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519},
		},
		dns: dns.Client{Net: "udp", Timeout: 10 * time.Second},
	}, nil
}

// serveFloor answers every key with a fresh discovery.
func serveFloor(addr string, f *floorClient) error {
	ok := netstring("OK secure match=" + benchMX)
	notFound := netstring("NOTFOUND ")
	return serveSocketmap(addr, func(key []byte) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.discover(ctx, string(key)); err != nil {
			return notFound
		}
		return ok
	})
}

// profileFloor, with -profile, records a CPU profile of the floor client
// over its whole life (start-up and its cold rounds) into DIR/floor.pprof;
// the returned function ends it.
func profileFloor(dir string) (end func() error, err error) {
	out, err := os.Create(filepath.Join(dir, "floor.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return out.Close()
	}, nil
}

// discover looks the policy of domain up: nil when it is the benchmark's
// enforce policy naming benchMX.
func (f *floorClient) discover(ctx context.Context, domain string) error {
	host := "mta-sts." + domain
	var (
		wg   sync.WaitGroup
		addr net.IP
		aErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err := f.query(ctx, host, dns.TypeA)
		if err != nil {
			aErr = err
			return
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				addr = a.A
				return
			}
		}
		aErr = errors.New("no A record")
	}()
	r, err := f.query(ctx, "_mta-sts."+domain, dns.TypeTXT)
	txt := false
	if err == nil {
		for _, rr := range r.Answer {
			if t, ok := rr.(*dns.TXT); ok && strings.HasPrefix(strings.Join(t.Txt, ""), "v=STSv1") {
				txt = true
			}
		}
	}
	wg.Wait()
	switch {
	case err != nil:
		return err
	case !txt:
		return errors.New("no STS record")
	case aErr != nil:
		return aErr
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr.String(), f.port))
	if err != nil {
		return err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	cfg := f.tls.Clone()
	cfg.ServerName = host
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(body, []byte("HTTP/1.1 200 ")) || !bytes.Contains(body, []byte("mode: enforce")) ||
		!bytes.Contains(body, []byte("mx: "+benchMX)) {
		return errors.New("not the benchmark policy")
	}
	return nil
}

func (f *floorClient) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name+".", qtype)
	m.RecursionDesired = true
	r, _, err := f.dns.ExchangeContext(ctx, m, f.dnsAddr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	return r, nil
}
