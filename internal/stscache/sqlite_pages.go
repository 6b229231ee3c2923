package stscache

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/mailsts/mailsts/mtasts"
)

// maxRecoverFile bounds the file readPages reads whole.
const maxRecoverFile = 1 << 30

// readPages reads the entries of the cache table straight from the
// b-tree pages of the file at path (sqlite.org/fileformat2.html), for the
// repair of a damaged file: SQL cannot reach the leaves beneath a damaged
// interior page, this can. It keeps only what is safe to trust: pages
// outside the freelist (a freed page still holds deleted or replaced
// rows), cells whose record lies whole on the page, records of the
// table's 15 columns (or 13, for a row written before schema version 3:
// SQLite does not rewrite rows when a column is added) that decode as an
// entry. When a domain turns up more
// than once, the entry checked last wins. A file whose header is not
// SQLite's gives nothing.
func readPages(path string) (map[string]*mtasts.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecoverFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecoverFile {
		return nil, fmt.Errorf("stscache: %s is over %d bytes: not read page by page", path, maxRecoverFile)
	}
	return entriesFromPages(b), nil
}

// entriesFromPages is readPages on the file's bytes b.
func entriesFromPages(b []byte) map[string]*mtasts.Entry {
	if len(b) < 100 || !bytes.HasPrefix(b, []byte("SQLite format 3\x00")) {
		return nil
	}
	pageSize := int(binary.BigEndian.Uint16(b[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return nil
	}
	usable := pageSize - int(b[20])
	pages := len(b) / pageSize
	page := func(n int) []byte {
		if n < 1 || n > pages {
			return nil
		}
		return b[(n-1)*pageSize : n*pageSize]
	}
	// The freelist: trunk pages, each listing leaf pages (§1.5).
	free := make(map[int]bool)
	trunk := int(binary.BigEndian.Uint32(b[32:]))
	for range pages {
		pg := page(trunk)
		if pg == nil || free[trunk] {
			break
		}
		free[trunk] = true
		n := int(binary.BigEndian.Uint32(pg[4:]))
		for i := 0; i < n && 8+4*i+4 <= len(pg); i++ {
			free[int(binary.BigEndian.Uint32(pg[8+4*i:]))] = true
		}
		trunk = int(binary.BigEndian.Uint32(pg))
	}
	// Index b-tree cells keep at most this much payload on the page
	// (§1.6); longer records spill to overflow pages, which are not read.
	maxLocal := (usable-12)*64/255 - 23
	out := make(map[string]*mtasts.Entry)
	for n := 1; n <= pages; n++ {
		if free[n] {
			continue
		}
		pg := page(n)[:usable]
		off := 0
		if n == 1 {
			off = 100
		}
		var hdr, skip int
		switch pg[off] {
		case 0x0a: // index leaf: a WITHOUT ROWID table's rows
			hdr = 8
		case 0x02: // index interior: its cells hold rows too
			hdr, skip = 12, 4
		default:
			continue
		}
		cells := int(binary.BigEndian.Uint16(pg[off+3:]))
		for i := range cells {
			at := off + hdr + 2*i
			if at+2 > len(pg) {
				break
			}
			c := int(binary.BigEndian.Uint16(pg[at:])) + skip
			if c >= len(pg) {
				continue
			}
			size, k := varint(pg[c:])
			if k == 0 || size > uint64(maxLocal) || c+k+int(size) > len(pg) {
				continue
			}
			vals, ok := record(pg[c+k : c+k+int(size)])
			if ok && len(vals) == 13 {
				// Before version 3: the defaults of the added columns.
				vals = append(vals, "", int64(0))
			}
			if !ok || len(vals) != 15 {
				continue
			}
			e, err := scanEntry(valuesScanner(vals))
			if err != nil || checkDomain(e.Domain) != nil {
				continue
			}
			if old := out[e.Domain]; old == nil || e.CheckedAt.After(old.CheckedAt) {
				out[e.Domain] = e
			}
		}
	}
	return out
}

// varint decodes SQLite's big-endian variable-length integer; k is 0 when
// b is too short.
func varint(b []byte) (v uint64, k int) {
	for i := range min(len(b), 9) {
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// record decodes a record (§2.1) into nil, int64, float64, string and
// []byte values.
func record(p []byte) ([]any, bool) {
	h, k := varint(p)
	if k == 0 || h > uint64(len(p)) || int(h) < k {
		return nil, false
	}
	var types []uint64
	for at := k; at < int(h); {
		t, n := varint(p[at:int(h)])
		if n == 0 {
			return nil, false
		}
		types = append(types, t)
		at += n
	}
	body := p[h:]
	vals := make([]any, 0, len(types))
	for _, t := range types {
		var n int
		switch {
		case t == 0, t == 8, t == 9:
		case t <= 4:
			n = int(t)
		case t == 5:
			n = 6
		case t == 6, t == 7:
			n = 8
		case t >= 12:
			n = int((t - 12) / 2)
		default:
			return nil, false // 10, 11: reserved
		}
		if n > len(body) {
			return nil, false
		}
		v := body[:n]
		body = body[n:]
		switch {
		case t == 0:
			vals = append(vals, nil)
		case t == 8, t == 9:
			vals = append(vals, int64(t-8))
		case t <= 6:
			var x int64
			for _, c := range v {
				x = x<<8 | int64(c)
			}
			if shift := 64 - 8*uint(n); shift > 0 { // sign-extend
				x = x << shift >> shift
			}
			vals = append(vals, x)
		case t == 7:
			vals = append(vals, math.Float64frombits(binary.BigEndian.Uint64(v)))
		case t%2 == 1:
			vals = append(vals, string(v))
		default:
			vals = append(vals, bytes.Clone(v))
		}
	}
	return vals, len(body) == 0
}

// valuesScanner scans decoded record values into scanEntry's destinations.
type valuesScanner []any

var errBadValue = errors.New("stscache: value of the wrong type")

func (vs valuesScanner) Scan(dest ...any) error {
	if len(dest) != len(vs) {
		return errBadValue
	}
	for i, d := range dest {
		v := vs[i]
		switch d := d.(type) {
		case *string:
			s, ok := v.(string)
			if !ok {
				return errBadValue
			}
			*d = s
		case *int64:
			n, ok := v.(int64)
			if !ok {
				return errBadValue
			}
			*d = n
		case *sql.NullString:
			s, ok := v.(string)
			if v != nil && !ok {
				return errBadValue
			}
			*d = sql.NullString{String: s, Valid: v != nil}
		case *sql.NullInt64:
			n, ok := v.(int64)
			if v != nil && !ok {
				return errBadValue
			}
			*d = sql.NullInt64{Int64: n, Valid: v != nil}
		default:
			return errBadValue
		}
	}
	return nil
}
