// Package dnsupdate publishes the DNS records of hosted MTA-STS domains
// with dynamic updates (RFC 2136) signed with TSIG (RFC 8945), and decides
// when a record may be published (see [Publisher]).
//
// An [Updater] replaces a whole TXT RRset in one UPDATE message — delete
// the RRset, add the new record — so a name never holds two MTA-STS records
// (RFC 8461 §3.1: senders treat several as none, STS-TXT-7). It names the
// zone in the message and refuses names outside it before sending
// anything. Keys come from BIND-style key files ([LoadKey]); hmac-sha256 is
// the default algorithm.
//
// Conformance notes:
//   - RFC 2136 §2.5.2 and §2.5.1: "delete an RRset" then "add to an
//     RRset", applied atomically by the primary.
//   - RFC 8945: the message is signed with the key; the primary's answer
//     must carry a valid TSIG too, or the update is reported as failed.
//   - RFC 8461 §3.1: the _mta-sts record is "v=STSv1; id=<id>;" with an id
//     of 1–32 letters and digits (STS-TXT-3, STS-TXT-4); RFC 8460 §3: the
//     _smtp._tls record is "v=TLSRPTv1; rua=…" (RPT-TXT-2, RPT-TXT-3).
//     Both are checked with the parsers senders use before publishing.
//   - TXT text longer than 255 bytes is split into several
//     character-strings, which senders join without separator (STS-TXT-9,
//     RPT-TXT-7).
package dnsupdate

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Errors.
var (
	// ErrConfig: the Updater or key is unusable (bad zone, name outside
	// the zone, unknown algorithm, unreadable key file); fix the
	// configuration.
	ErrConfig = errors.New("dnsupdate: invalid configuration")
	// ErrRecord: the record to publish would not parse for senders.
	ErrRecord = errors.New("dnsupdate: invalid record")
	// ErrRefused: the primary answered with an error rcode (REFUSED,
	// NOTAUTH for a bad key, NOTZONE, …); the zone is unchanged.
	ErrRefused = errors.New("dnsupdate: update refused")
	// ErrTransport: no valid answer (timeout, network error, bad TSIG on
	// the reply); the update may or may not have been applied.
	ErrTransport = errors.New("dnsupdate: no answer from primary")
)

// Key is a TSIG key.
type Key struct {
	// Name is the key's name as the server knows it.
	Name string
	// Algorithm is "hmac-sha256" (default), "hmac-sha384",
	// "hmac-sha512" or "hmac-sha1".
	Algorithm string
	// Secret is the base64 shared secret.
	Secret string
}

// maxKeyFile bounds the key file read by LoadKey.
const maxKeyFile = 64 << 10

// LoadKey reads a TSIG key file in BIND's format, as written by
// tsig-keygen:
//
//	key "mailsts" {
//		algorithm hmac-sha256;
//		secret "c2VjcmV0…";
//	};
func LoadKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("%w: TSIG key: %w", ErrConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return Key{}, fmt.Errorf("%w: TSIG key %s: %w", ErrConfig, path, err)
	}
	if len(b) > maxKeyFile {
		return Key{}, fmt.Errorf("%w: TSIG key %s: larger than %d bytes", ErrConfig, path, maxKeyFile)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// ParseKey parses the text of a BIND key file holding one key.
func ParseKey(text string) (Key, error) {
	var k Key
	// Tokenise: quoted strings, braces and semicolons, words; comments
	// (#, //) to the end of the line.
	var toks []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		for len(line) > 0 {
			switch c := line[0]; {
			case c == '#' || strings.HasPrefix(line, "//"):
				line = "" // a comment, outside any string
			case c == ' ' || c == '\t' || c == '\r':
				line = line[1:]
			case c == '{' || c == '}' || c == ';':
				toks = append(toks, string(c))
				line = line[1:]
			case c == '"':
				end := strings.IndexByte(line[1:], '"')
				if end < 0 {
					return k, fmt.Errorf("%w: TSIG key: unterminated string", ErrConfig)
				}
				toks = append(toks, line[1:1+end])
				line = line[2+end:]
			default:
				end := strings.IndexAny(line, " \t{};\"")
				if end < 0 {
					end = len(line)
				}
				toks = append(toks, line[:end])
				line = line[end:]
			}
		}
	}
	if len(toks) < 3 || toks[0] != "key" || toks[2] != "{" {
		return k, fmt.Errorf(`%w: TSIG key: want key "NAME" { algorithm ALG; secret "BASE64"; };`, ErrConfig)
	}
	k.Name = toks[1]
	if !keyName.MatchString(k.Name) {
		return Key{}, fmt.Errorf("%w: TSIG key name %q", ErrConfig, k.Name)
	}
	i := 3
	for ; i+2 < len(toks) && toks[i] != "}"; i += 3 {
		if toks[i+2] != ";" {
			return Key{}, fmt.Errorf("%w: TSIG key: missing ';' after %s", ErrConfig, toks[i])
		}
		switch toks[i] {
		case "algorithm":
			k.Algorithm = toks[i+1]
		case "secret":
			k.Secret = toks[i+1]
		default:
			return Key{}, fmt.Errorf("%w: TSIG key: unknown clause %q", ErrConfig, toks[i])
		}
	}
	if i+2 != len(toks) || toks[i] != "}" || toks[i+1] != ";" {
		return Key{}, fmt.Errorf("%w: TSIG key: want one key block ending in \"};\"", ErrConfig)
	}
	if _, err := k.algorithm(); err != nil {
		return Key{}, err
	}
	if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || k.Secret == "" {
		return Key{}, fmt.Errorf("%w: TSIG key %q: secret is not base64", ErrConfig, k.Name)
	}
	return k, nil
}

// keyName is what a TSIG key name may be made of here (a domain name,
// as tsig-keygen writes them).
var keyName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$`)

func (k Key) algorithm() (string, error) {
	switch strings.ToLower(strings.TrimSuffix(k.Algorithm, ".")) {
	case "", "hmac-sha256":
		return dns.HmacSHA256, nil
	case "hmac-sha384":
		return dns.HmacSHA384, nil
	case "hmac-sha512":
		return dns.HmacSHA512, nil
	case "hmac-sha1":
		return dns.HmacSHA1, nil
	}
	return "", fmt.Errorf("%w: TSIG algorithm %q not supported", ErrConfig, k.Algorithm)
}

// Updater sends dynamic updates for one zone to its primary server.
type Updater struct {
	// Server is the primary's host:port.
	Server string
	// Zone is the zone the records live in (for example "example.com").
	Zone string
	// Key signs every update.
	Key Key
	// TTL of the records written (default 300 seconds).
	TTL uint32
	// Timeout of one update (default 10 s).
	Timeout time.Duration
	// Logger receives one line per update; nil discards.
	Logger *slog.Logger
}

func (u *Updater) logger() *slog.Logger {
	if u.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Logger
}

// SetSTS replaces the TXT RRset at _mta-sts.<domain> with the MTA-STS
// record of policy id (RFC 8461 §3.1).
func (u *Updater) SetSTS(ctx context.Context, domain, id string) error {
	r := &mtasts.Record{ID: id}
	txt := r.String()
	if _, err := mtasts.ParseRecord(txt); err != nil || id == "" {
		return fmt.Errorf("%w: _mta-sts id %q: %v", ErrRecord, id, err)
	}
	return u.SetTXT(ctx, "_mta-sts."+domain, txt)
}

// SetTLSRPT replaces the TXT RRset at _smtp._tls.<domain> with a TLSRPT
// record listing rua (RFC 8460 §3), for example "mailto:tlsrpt@example.com".
func (u *Updater) SetTLSRPT(ctx context.Context, domain string, rua ...string) error {
	r := &tlsrpt.Record{RUA: rua}
	txt := r.String()
	if _, err := tlsrpt.ParseRecord(txt); err != nil || len(rua) == 0 {
		return fmt.Errorf("%w: _smtp._tls rua %q: %v", ErrRecord, rua, err)
	}
	return u.SetTXT(ctx, "_smtp._tls."+domain, txt)
}

// SetTXT replaces the TXT RRset at name (inside Zone) with one record
// holding text, in one atomic update.
func (u *Updater) SetTXT(ctx context.Context, name, text string) error {
	zone, err := dnsresolve.Normalize(u.Zone)
	if err != nil || u.Zone == "" {
		return fmt.Errorf("%w: zone %q: %v", ErrConfig, u.Zone, err)
	}
	owner, err := dnsresolve.Normalize(name)
	if err != nil {
		return fmt.Errorf("%w: name %q: %w", ErrConfig, name, err)
	}
	if !dns.IsSubDomain(zone+".", owner+".") {
		return fmt.Errorf("%w: %s is not inside zone %s", ErrConfig, owner, zone)
	}
	alg, err := u.Key.algorithm()
	if err != nil {
		return err
	}
	if u.Key.Name == "" || u.Key.Secret == "" {
		return fmt.Errorf("%w: no TSIG key", ErrConfig)
	}
	if u.Server == "" {
		return fmt.Errorf("%w: no primary server", ErrConfig)
	}
	ttl := u.TTL
	if ttl == 0 {
		ttl = 300
	}
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: owner + ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: splitTXT(text)}
	m := new(dns.Msg)
	m.SetUpdate(zone + ".")
	// RFC 2136 §2.5.2 then §2.5.1: delete the RRset, add the record; the
	// primary applies both or neither.
	m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: owner + ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	m.Insert([]dns.RR{rr})
	keyName := dns.Fqdn(strings.ToLower(u.Key.Name))
	m.SetTsig(keyName, alg, 300, time.Now().Unix())
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{keyName: u.Key.Secret}, Timeout: timeout}
	resp, _, err := c.ExchangeContext(ctx, m, u.Server)
	if errors.Is(err, dns.ErrAuth) {
		// RFC 8945 §5.2: a NOTAUTH reply, unsigned, for a key the server
		// does not know or a signature it rejects.
		return fmt.Errorf("%w: update of %s TXT at %s: NOTAUTH: the primary rejected TSIG key %s (check its name, secret and algorithm)", ErrRefused, owner, u.Server, strings.TrimSuffix(keyName, "."))
	}
	if err != nil {
		return fmt.Errorf("%w: update of %s TXT at %s: %w", ErrTransport, owner, u.Server, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%w: update of %s TXT at %s: %s", ErrRefused, owner, u.Server, dns.RcodeToString[resp.Rcode])
	}
	u.logger().Info("DNS record updated", "name", owner, "type", "TXT", "text", text, "server", u.Server)
	return nil
}

// splitTXT cuts text into character-strings of at most 255 bytes.
func splitTXT(text string) []string {
	var out []string
	for len(text) > 255 {
		out = append(out, text[:255])
		text = text[255:]
	}
	out = append(out, text)
	// miekg/dns reads Txt in presentation form: escape quotes and
	// backslashes so the bytes go out as written.
	for i, s := range out {
		out[i] = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
	}
	return out
}
