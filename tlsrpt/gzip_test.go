package tlsrpt

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) { // RPT-RECV-3, RPT-HTTP-2, quirk 25, quirk 28
	t.Parallel()
	js := readTestdata(t, "f10c.json")
	gz := gzipBytes(t, js)
	cases := []struct {
		name, ctype string
		body        []byte
		repair      string
	}{
		{"gzip", MediaTypeGzip, gz, ""},
		{"json", MediaTypeJSON, js, ""},
		{"gzip with params", "application/tlsrpt+gzip; charset=binary", gz, ""},
		{"gzip undeclared", "", gz, ""},
		{"gzip as octet-stream", "application/octet-stream", gz, ""},
		{"plain JSON declared gzip (quirk 25)", MediaTypeGzip, js, "gzip-declared-plain-json"},
		{"gzip declared JSON", MediaTypeJSON, gz, "json-declared-gzip"},
		{"bare tlsrpt (quirk 23)", "application/tlsrpt", js, ""},
	}
	for _, tc := range cases {
		out, reps, err := Decode(bytes.NewReader(tc.body), tc.ctype, Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(out, js) {
			t.Errorf("%s: wrong output", tc.name)
		}
		if tc.repair == "" && len(reps) != 0 || tc.repair != "" && !hasRepair(reps, tc.repair) {
			t.Errorf("%s: repairs %v, want %q", tc.name, repairCodes(reps), tc.repair)
		}
	}
}

func TestDecodeRejects(t *testing.T) { // wrong content type, not a report, RPT-RECV-2
	t.Parallel()
	js := readTestdata(t, "f10c.json")
	cases := []struct {
		name, ctype string
		body        []byte
		err         error
	}{
		{"text/html", "text/html", js, ErrUnsupportedType},
		{"image", "image/png", gzipBytes(t, js), ErrUnsupportedType},
		{"bad media type", "application/", js, ErrUnsupportedType},
		{"garbage", MediaTypeJSON, []byte("hello"), ErrSyntax},
		{"empty", MediaTypeJSON, nil, ErrSyntax},
		{"truncated gzip", MediaTypeGzip, gzipBytes(t, js)[:40], ErrSyntax},
		{"gzip of garbage", MediaTypeGzip, append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{0}, 20)...), ErrSyntax},
	}
	for _, tc := range cases {
		if _, _, err := Decode(bytes.NewReader(tc.body), tc.ctype, Limits{}); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
}

// bomb returns 1 GiB of zeros as concatenated gzip members (RFC 1952 allows
// several members; each holds 1 MiB), about 1 MB compressed.
func bomb(t testing.TB) []byte {
	member := gzipBytes(t, make([]byte, 1<<20))
	return bytes.Repeat(member, 1024)
}

func TestDecodeBomb(t *testing.T) { // RPT-RECV-2, GO-9
	t.Parallel()
	b := bomb(t)
	if len(b) > DefaultMaxInput {
		t.Fatalf("bomb is %d bytes compressed, above the input cap", len(b))
	}
	// Only the 20 MiB output cap is inflated, not the 1 GiB: a bound on
	// work, not on time. The 33rd member (past 32 MiB) is not gzip, so a
	// decoder that inflated beyond the cap would fail with a syntax error
	// instead of ErrTooLarge.
	member := len(b) / 1024
	copy(b[32*member:33*member], bytes.Repeat([]byte{0xff}, member))
	_, _, err := Decode(bytes.NewReader(b), MediaTypeGzip, Limits{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge (the inflating stops at the cap)", err)
	}
	// With a cap above the poisoned member, the decoder reaches it.
	if _, _, err := Decode(bytes.NewReader(b), MediaTypeGzip, Limits{MaxOutput: 64 << 20}); !errors.Is(err, ErrSyntax) {
		t.Fatalf("err with a 64 MiB cap = %v, want ErrSyntax from the member past 32 MiB", err)
	}
	// The same bomb as a mail attachment (RFC 8460 §7).
	msg := "Content-Type: multipart/report; report-type=tlsrpt; boundary=x\r\n\r\n--x\r\n" +
		"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(b) + "\r\n--x--\r\n"
	if _, err := ParseMessage(strings.NewReader(msg), Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb in mail: %v, want ErrTooLarge", err)
	}
	// A smaller configured output cap applies.
	if _, _, err := Decode(bytes.NewReader(gzipBytes(t, make([]byte, 2000))), MediaTypeGzip, Limits{MaxOutput: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxOutput: %v", err)
	}
	// Uncompressed JSON above the output cap too.
	big := append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 2000)...)
	if _, _, err := Decode(bytes.NewReader(big), MediaTypeJSON, Limits{MaxOutput: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxOutput plain: %v", err)
	}
}

// countingReader yields zeros and counts how many bytes were read.
type countingReader struct{ n, max int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.max {
		return 0, io.EOF
	}
	if int64(len(p)) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	clear(p)
	c.n += int64(len(p))
	return len(p), nil
}

func TestDecodeInputCap(t *testing.T) { // RPT-RECV-2: 100 MB body rejected by the input cap
	t.Parallel()
	cr := &countingReader{max: 100 << 20}
	if _, _, err := Decode(cr, MediaTypeGzip, Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if cr.n > DefaultMaxInput+64<<10 {
		t.Errorf("read %d bytes, cap is %d", cr.n, DefaultMaxInput)
	}
	cr = &countingReader{max: 100 << 20}
	if _, err := ParseMessage(cr, Limits{MaxInput: 1 << 20}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseMessage: err = %v, want ErrTooLarge", err)
	}
	if cr.n > 1<<20+64<<10 {
		t.Errorf("ParseMessage read %d bytes", cr.n)
	}
}

func zipBytes(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeZip(t *testing.T) { // quirk 28, RPT-RECV-3
	t.Parallel()
	js := readTestdata(t, "f10c.json")
	for name, z := range map[string][]byte{
		"json":    zipBytes(t, map[string][]byte{"a!b!1!2.json": js}),
		"json.gz": zipBytes(t, map[string][]byte{"../../etc/a!b!1!2.json.gz": gzipBytes(t, js)}),
	} {
		out, reps, err := Decode(bytes.NewReader(z), "application/zip", Limits{})
		if err != nil || !bytes.Equal(out, js) || !hasRepair(reps, "zip-archive") {
			t.Errorf("%s: %v %v", name, err, repairCodes(reps))
		}
	}
	for name, z := range map[string][]byte{
		"two members": zipBytes(t, map[string][]byte{"a.json": js, "b.json": js}),
		"not json":    zipBytes(t, map[string][]byte{"a.exe": js}),
		"nested zip":  zipBytes(t, map[string][]byte{"a.json": zipBytes(t, map[string][]byte{"b.json": js})}),
		"empty":       zipBytes(t, nil),
	} {
		if _, _, err := Decode(bytes.NewReader(z), "application/zip", Limits{}); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v", name, err)
		}
	}
	big := zipBytes(t, map[string][]byte{"a.json": make([]byte, 3<<20)})
	if _, _, err := Decode(bytes.NewReader(big), "application/zip", Limits{MaxOutput: 1 << 20}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("zip bomb: %v", err)
	}
}

// TestGunzipReused checks that the pooled gzip readers give, in
// concurrent calls and in any order, what a new gzip.Reader gives for
// each body: after a good stream, a corrupt or truncated one, a
// concatenated one or one over the cap, no state leaks into the next.
func TestGunzipReused(t *testing.T) { // GO-9
	t.Parallel()
	js := readTestdata(t, "f10c.json")
	small := gzipBytes(t, js)
	big := gzipBytes(t, bytes.Repeat(js, 40))
	badCRC := bytes.Clone(small)
	badCRC[len(badCRC)-6] ^= 0xff
	bodies := [][]byte{
		small,
		big,
		append(bytes.Clone(small), big...), // two members (RFC 1952)
		small[:len(small)/2],               // truncated
		badCRC,
		append([]byte("\x1f\x8b\x08\x00"), bytes.Repeat([]byte{0xff}, 40)...), // header, then garbage
		gzipBytes(t, nil),
	}
	const max = 16 << 10 // big decompresses to more: ErrTooLarge
	type outcome struct {
		out []byte
		err string
	}
	want := make([]outcome, len(bodies))
	for i, b := range bodies {
		// The reference: gunzip with a new reader every time.
		out, err := func() ([]byte, error) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%w: gzip: %w", ErrSyntax, err)
			}
			out, err := readCapped(zr, max)
			if errors.Is(err, ErrTooLarge) {
				return nil, fmt.Errorf("%w: decompressed report above %d bytes", ErrTooLarge, max)
			} else if err != nil {
				return nil, fmt.Errorf("%w: gzip: %w", ErrSyntax, err)
			}
			return out, nil
		}()
		want[i] = outcome{out: out}
		if err != nil {
			want[i].err = err.Error()
		}
	}
	for _, i := range []int{1, 2, 3, 4, 5} {
		if want[i].err == "" {
			t.Fatalf("body %d does not fail as the test means it to", i)
		}
	}
	const workers, each = 4, 60
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				for i := range each {
					k := (i*7 + w*3) % len(bodies)
					out, err := gunzip(bodies[k], max)
					got := outcome{out: out}
					if err != nil {
						got.err = err.Error()
					}
					switch {
					case got.err != want[k].err:
						return fmt.Errorf("body %d (call %d.%d): error %q, a new reader gives %q", k, w, i, got.err, want[k].err)
					case !bytes.Equal(got.out, want[k].out):
						return fmt.Errorf("body %d (call %d.%d): %d bytes out, a new reader gives %d", k, w, i, len(got.out), len(want[k].out))
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkDecodeGzip(b *testing.B) {
	gz := gzipBytes(b, readTestdata(b, "f10c.json"))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(bytes.NewReader(gz), MediaTypeGzip, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzGunzipReused: whatever a pooled reader read before (a, possibly
// hostile), gunzip of b gives what a new reader gives.
func FuzzGunzipReused(f *testing.F) {
	js := readTestdata(f, "f10c.json")
	gz := gzipBytes(f, js)
	f.Add(gz[:len(gz)/2], gz)
	f.Add(gz, append(bytes.Clone(gz), gz...))
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), gz[:20])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		const max = 1 << 16
		var want []byte
		zr, werr := gzip.NewReader(bytes.NewReader(b))
		if werr == nil {
			want, werr = readCapped(zr, max)
		}
		_, _ = gunzip(a, max) // leaves a pooled reader in whatever state a made
		got, err := gunzip(b, max)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("after %d bytes, %d bytes: pooled %d bytes (%v), new reader %d bytes (%v)", len(a), len(b), len(got), err, len(want), werr)
		}
	})
}
