package tlsrpt

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"sync"
)

// Media types of RFC 8460 §5.3 and §6.4/§6.5.
const (
	MediaTypeJSON = "application/tlsrpt+json"
	MediaTypeGzip = "application/tlsrpt+gzip"
)

// Default limits. mox uses 15 MB per message and 20 MB decompressed;
// tlsrpt-digest 10 MB decompressed. A typical report is a few KB.
const (
	DefaultMaxInput  = 15 << 20
	DefaultMaxOutput = 20 << 20
)

// Limits caps what Decode and ParseMessage read from hostile input
// (RFC 8460 §7, RPT-RECV-2). Zero fields mean the defaults.
type Limits struct {
	// MaxInput caps the bytes read: the HTTP body, or the whole message.
	MaxInput int64
	// MaxOutput caps the decompressed JSON of one report.
	MaxOutput int64
}

func (l Limits) maxInput() int64 {
	if l.MaxInput > 0 {
		return l.MaxInput
	}
	return DefaultMaxInput
}

func (l Limits) maxOutput() int64 {
	if l.MaxOutput > 0 {
		return l.MaxOutput
	}
	return DefaultMaxOutput
}

// acceptedTypes may carry a report body. Anything else is
// ErrUnsupportedType. The empty type means "unknown" and is accepted.
var acceptedTypes = map[string]bool{
	MediaTypeJSON: true, MediaTypeGzip: true,
	"application/tlsrpt":           true, // quirk 23
	"application/json":             true,
	"application/gzip":             true, // quirk 28
	"application/x-gzip":           true,
	"application/octet-stream":     true,
	"application/zip":              true,
	"application/x-zip-compressed": true,
	"text/json":                    true,
	"":                             true,
}

// Decode reads a report body and returns its JSON bytes. contentType is the
// declared media type (parameters allowed, empty if unknown); it only
// decides whether the body may be a report at all: the format is recognised
// from the bytes, so a gzip body is unpacked whatever the declared type
// (RFC 8460 §6.5 magic 1f 8b, RPT-RECV-3) and a "+gzip" body that is plain
// JSON is accepted (quirk 25, repair "gzip-declared-plain-json"). A zip
// archive must hold exactly one .json or .json.gz member (quirk 28).
//
// Decode reads at most lim.MaxInput bytes and decompresses at most
// lim.MaxOutput bytes; beyond either it stops and returns ErrTooLarge
// without reading or allocating the rest (decompression bombs).
func Decode(r io.Reader, contentType string, lim Limits) ([]byte, []Repair, error) {
	mt := ""
	if contentType != "" {
		t, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: content type %q: %w", ErrUnsupportedType, clip(contentType), err)
		}
		mt = t
	}
	if !acceptedTypes[mt] {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnsupportedType, mt)
	}
	body, err := readCapped(r, lim.maxInput())
	if err != nil {
		return nil, nil, err
	}
	return decodeBytes(body, mt, lim, 0)
}

func decodeBytes(body []byte, mt string, lim Limits, depth int) ([]byte, []Repair, error) {
	var repairs []Repair
	switch {
	case bytes.HasPrefix(body, []byte{0x1f, 0x8b}):
		if mt == MediaTypeJSON || mt == "application/json" {
			repairs = append(repairs, Repair{Code: "json-declared-gzip", Detail: "declared " + mt + " but the body is gzip"})
		}
		out, err := gunzip(body, lim.maxOutput())
		return out, repairs, err
	case bytes.HasPrefix(body, []byte("PK\x03\x04")):
		if depth > 0 {
			return nil, nil, fmt.Errorf("%w: nested zip archive", ErrSyntax)
		}
		return unzipSingle(body, lim)
	}
	if !looksLikeJSON(body) {
		return nil, nil, fmt.Errorf("%w: body is neither gzip nor JSON", ErrSyntax)
	}
	switch mt {
	case MediaTypeGzip, "application/gzip", "application/x-gzip":
		// Quirk 25: parsedmarc found +gzip attachments holding plain JSON.
		repairs = append(repairs, Repair{Code: "gzip-declared-plain-json", Detail: "declared " + mt + " but the body is plain JSON"})
	}
	if int64(len(body)) > lim.maxOutput() {
		return nil, nil, fmt.Errorf("%w: JSON body above %d bytes", ErrTooLarge, lim.maxOutput())
	}
	return body, repairs, nil
}

// looksLikeJSON: optional BOM and whitespace, then "{".
func looksLikeJSON(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// gunzip decompresses at most max bytes (GO-9). Concatenated gzip members
// are read as one stream, as RFC 1952 allows.
func gunzip(body []byte, max int64) ([]byte, error) {
	zr, err := newGzipReader(body)
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrSyntax, err)
	}
	defer gzipReaders.Put(zr)
	out, err := readCapped(zr, max)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%w: decompressed report above %d bytes", ErrTooLarge, max)
		}
		return nil, fmt.Errorf("%w: gzip: %w", ErrSyntax, err)
	}
	return out, nil
}

// gzipReaders keeps gzip readers for reuse: a new one allocates and
// clears a 32 KiB window, which was a fifth of the HTTP receiver's
// decompression of a typical report (bench/reports -http).
var gzipReaders sync.Pool

// newGzipReader returns a reader of body from gzipReaders, or a new one.
// The caller puts it back once it is done with it, also after an error:
// Reset starts a reader afresh whatever state it was left in.
func newGzipReader(body []byte) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			gzipReaders.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(bytes.NewReader(body))
}

// unzipSingle extracts the one JSON member of a zip archive. Member names
// are only looked at, never used as paths (RPT-RECV-3).
func unzipSingle(body []byte, lim Limits) ([]byte, []Repair, error) {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: zip: %w", ErrSyntax, err)
	}
	var files []*zip.File
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			files = append(files, f)
		}
	}
	if len(files) != 1 {
		return nil, nil, fmt.Errorf("%w: zip archive holds %d files, want exactly one report", ErrSyntax, len(files))
	}
	f := files[0]
	name := strings.ToLower(path.Base(f.Name))
	if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".json.gz") && !strings.HasSuffix(name, ".gz") {
		return nil, nil, fmt.Errorf("%w: zip member %q is not a JSON report", ErrSyntax, clip(f.Name))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: zip: %w", ErrSyntax, err)
	}
	defer rc.Close()
	// The declared uncompressed size is not trusted; the cap applies to
	// what is actually read.
	inner, err := readCapped(rc, lim.maxOutput())
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: zip: %w", ErrSyntax, err)
	}
	out, repairs, err := decodeBytes(inner, "", lim, 1)
	repairs = append([]Repair{{Code: "zip-archive", Detail: "report extracted from zip member " + clip(f.Name)}}, repairs...)
	return out, repairs, err
}

// readCapped reads all of r, failing with ErrTooLarge as soon as more than
// max bytes arrive.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return buf.Bytes(), nil
}
