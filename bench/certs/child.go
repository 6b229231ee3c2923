package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish/certs"
)

// child runs the policy host: a certs.Manager with delegation, serving
// HTTP-01 on fd 3 and TLS on fd 4, until stdin closes. It prints "ready",
// then one JSON line of childStats for every "stats" line read.
func child(args []string) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	caURL := fs.String("ca", "", "ACME directory")
	caRoot := fs.String("ca-root", "", "PEM file trusting the ACME API")
	dnsAddr := fs.String("dns", "", "DNS server")
	dir := fs.String("dir", "", "file storage directory")
	storage := fs.String("storage", "file", "file, postgres or redis")
	challenge := fs.String("challenge", "tls-alpn-01", "challenge type")
	throttle := fs.Int("throttle", 10, "certmagic orders per 10 s")
	httpPort := fs.Int("http-port", 0, "port of fd 3")
	tlsPort := fs.Int("tls-port", 0, "port of fd 4")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// A benchmark knob, not a mailsts setting: certmagic throttles orders
	// per CA account in a package variable.
	certmagic.RateLimitEvents = *throttle
	pem, err := os.ReadFile(*caRoot)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	res, err := dnsresolve.NewClient(*dnsAddr)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var st certmagic.Storage
	switch *storage {
	case "file":
		st = &certmagic.FileStorage{Path: *dir}
	case "postgres":
		dsn := os.Getenv("MAILSTS_TEST_POSTGRES")
		if dsn == "" {
			dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		schema := fmt.Sprintf("mailsts_bench_certs_%d", os.Getpid())
		ps, err := certs.OpenPostgres(ctx, dsn, certs.PostgresOptions{Schema: schema})
		if err != nil {
			return err
		}
		defer func() {
			ps.Close()
			if c, err := pgx.Connect(ctx, dsn); err == nil {
				c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
				c.Close(ctx)
			}
		}()
		st = ps
	case "redis":
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		prefix := fmt.Sprintf("mailsts-bench:certs:%d:", os.Getpid())
		defer func() {
			iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				rc.Del(ctx, iter.Val())
			}
			rc.Close()
		}()
		rs := certs.NewRedisStorage(rc, certs.RedisOptions{Prefix: prefix})
		defer rs.Close()
		st = rs
	default:
		return fmt.Errorf("unknown storage %q", *storage)
	}
	m, err := certs.New(certs.Config{
		CA: *caURL, TrustedRoots: roots, Storage: st, Email: "hostmaster@provider.bench.test",
		HTTPPort: *httpPort, TLSPort: *tlsPort, ListenHost: "127.0.0.1",
		DisableHTTP01:    *challenge != "http-01",
		DisableTLSALPN01: *challenge != "tls-alpn-01",
		Delegation: &certs.Delegation{Host: providerHost, STSName: providerSTS,
			Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		Resolver: res,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer m.Close()
	httpLn, err := net.FileListener(os.NewFile(3, "http"))
	if err != nil {
		return err
	}
	tlsLn, err := net.FileListener(os.NewFile(4, "tls"))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: m.HTTPHandler(http.NotFoundHandler()), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(httpLn)
	defer hs.Close()
	cfg := m.TLSConfig()
	go func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				tls.Server(c, cfg).Handshake()
			}()
		}
	}()
	defer tlsLn.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if in.Text() == "stats" {
			enc.Encode(readStats())
		}
	}
	return nil
}
