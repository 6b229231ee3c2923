package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mailsts/mailsts/internal/testnet"
)

// buildTLSPol returns a postfix-tlspol binary: src itself when it is a
// file, else built from src (a source tree, or a git directory whose HEAD
// is exported first) into dir, offline, with its vendored modules. Its
// code is never part of this repository.
func buildTLSPol(ctx context.Context, src, dir string) (string, error) {
	if src == "" {
		return "", errors.New("the tlspol daemon needs -tlspol: a postfix-tlspol source tree or git directory (github.com/Zuplu/postfix-tlspol, with its vendor directory), or a binary")
	}
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("-tlspol: %w", err)
	}
	if !fi.IsDir() {
		return filepath.Abs(src)
	}
	tree := src
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		// A git directory: export HEAD.
		tree = filepath.Join(dir, "tlspol-src")
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", `git --git-dir="$1" archive HEAD | tar -x -C "$2"`, "sh", src, tree)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("exporting postfix-tlspol from %s: %w: %s", src, err, out)
		}
	}
	bin := filepath.Join(dir, "postfix-tlspol")
	log.Printf("building postfix-tlspol from %s", src)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = tree
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=vendor", "GOTOOLCHAIN=local", "GOPROXY=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building postfix-tlspol (needs its vendor directory): %w", err)
	}
	return bin, nil
}

// startTLSPol starts postfix-tlspol with its cache file in tmp, asking the
// testnet DNS at dnsAddr; it trusts the testnet CA through SSL_CERT_FILE
// (Go's system pool) and fetches policies on port 443, like the peer.
func startTLSPol(cfg config, n *testnet.Net, dnsAddr, tmp string) (*daemon, error) {
	if cfg.tlspol == "" {
		return nil, errors.New("no postfix-tlspol binary (-tlspol)")
	}
	conf := filepath.Join(tmp, "tlspol.yaml")
	yml := fmt.Sprintf("server:\n  address: %s\n  log-level: warn\n  prefetch: false\n  cache-file: %s\ndns:\n  address: %s\n",
		tlspolAddr, filepath.Join(tmp, "tlspol-cache.db"), dnsAddr)
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	return startDaemon("tlspol", tlspolAddr, []string{"SSL_CERT_FILE=" + n.CAFile()}, cfg.tlspol, "-config", conf)
}

// mapName is the socketmap name a daemon answers: postfix-tlspol serves
// the map QUERY (socketmap:inet:…:QUERY in Postfix), the others any name.
func mapName(addr string) string {
	if addr == tlspolAddr {
		return "QUERY"
	}
	return "postfix"
}
