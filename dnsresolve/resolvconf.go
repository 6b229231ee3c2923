package dnsresolve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// DefaultResolvConf is where a [Client] without Servers finds its servers.
const DefaultResolvConf = "/etc/resolv.conf"

// ErrNoServers means no DNS server is configured (resolv.conf has no usable
// nameserver line). The caller should configure servers explicitly.
var ErrNoServers = errors.New("dns: no DNS servers configured")

const (
	// resolv.conf(5): "Up to MAXNS (currently 3) name servers may be
	// listed"; later ones are ignored, as glibc and Go's resolver do.
	maxResolvConfServers = 3
	// Bound what we read of a local but possibly odd file.
	maxResolvConfSize = 64 << 10
)

// ServersFromResolvConf returns the nameserver addresses listed in the
// resolv.conf(5) file at path, as "host:port" with port 53 ("[::1]:53" for
// IPv6). Only the first three nameserver lines count, like glibc; other
// directives (search, options, …) are ignored. A file without any usable
// nameserver line gives an error wrapping [ErrNoServers].
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: reading resolver configuration: %w", err)
	}
	defer f.Close()
	servers, err := parseResolvConf(io.LimitReader(f, maxResolvConfSize))
	if err != nil {
		return nil, fmt.Errorf("dns: reading %s: %w", path, err)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no nameserver line in %s", ErrNoServers, path)
	}
	return servers, nil
}

// parseResolvConf extracts the nameserver addresses. Malformed nameserver
// lines are skipped (glibc does the same) rather than failing the whole file.
func parseResolvConf(r io.Reader) ([]string, error) {
	var servers []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxResolvConfSize)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue // comments (# or ;), search, domain, options, …
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		servers = append(servers, netip.AddrPortFrom(addr, 53).String())
		if len(servers) == maxResolvConfServers {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return servers, nil
}

// NormalizeServer turns a DNS server address into the "host:port" form the
// Client dials: a bare IP gets port 53, IPv6 is bracketed ("::1" →
// "[::1]:53"). Only IP literals are accepted: resolving the resolver's own
// name would need a resolver.
func NormalizeServer(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("dns: server %q: port 0", s)
		}
		return ap.String(), nil
	}
	bare := s
	if strings.HasPrefix(bare, "[") && strings.HasSuffix(bare, "]") {
		bare = bare[1 : len(bare)-1]
	}
	if addr, err := netip.ParseAddr(bare); err == nil {
		return netip.AddrPortFrom(addr, 53).String(), nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if _, err := strconv.ParseUint(s[i+1:], 10, 16); err != nil {
			return "", fmt.Errorf("dns: server %q: invalid port", s)
		}
	}
	return "", fmt.Errorf("dns: server %q: want an IP address, optionally with :port", s)
}
