package stscache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
)

// damagedCacheEntries is the size of the cache damageCache builds: about
// the 1,355 domains of the report in issue #10.
const damagedCacheEntries = 1400

// buildCache writes a cache file of damagedCacheEntries valid enforce
// policies (STS-CACHE-10: the ones that must survive) and returns them by
// domain.
func buildCache(t *testing.T, path string, now time.Time) map[string]*mtasts.Entry {
	t.Helper()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]*mtasts.Entry, damagedCacheEntries)
	es := make([]*mtasts.Entry, 0, damagedCacheEntries)
	for i := range damagedCacheEntries {
		e := entryAt(fmt.Sprintf("d%04d.example", i), mtasts.ModeEnforce, now, 86400*30, now.Add(-time.Duration(i)*time.Minute))
		e.Policy.MX = []string{"mx1." + e.Domain, "*.mx." + e.Domain}
		want[e.Domain] = e
		es = append(es, e)
	}
	if err := s.putAll(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the log was not checkpointed into the file at close (%v): the page offsets below would miss", err)
	}
	return want
}

// smashPages writes deterministic garbage over count pages of the file
// from page first (1-based, 4,096-byte pages, SQLite's default).
func smashPages(t *testing.T, path string, first, count int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if pages := int(fi.Size() / 4096); first+count-1 > pages {
		t.Fatalf("file has %d pages; cannot smash %d..%d", pages, first, first+count-1)
	}
	garbage := make([]byte, 4096*count)
	r := rand.New(rand.NewPCG(uint64(first), uint64(count)))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	if _, err := f.WriteAt(garbage, int64(first-1)*4096); err != nil {
		t.Fatal(err)
	}
}

// tablePage is a page of the entries table: its cell count and whether it
// is a leaf.
type tablePage struct {
	cells int
	leaf  bool
}

// tablePages returns the pages of the entries table, read from the file
// format (sqlite.org/fileformat2.html §1.6): a WITHOUT ROWID table is an
// index b-tree whose leaves (type 0x0a) and interior pages (0x02, each cell
// after a 4-byte child pointer) hold 15-column records (13 before schema
// version 3); the indexes' have 2.
func tablePages(t *testing.T, path string) map[int]tablePage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	uvarint := func(b []byte) (uint64, int) { // SQLite's big-endian varint
		var v uint64
		for i := range min(len(b), 9) {
			if i == 8 {
				return v<<8 | uint64(b[i]), 9
			}
			v = v<<7 | uint64(b[i]&0x7f)
			if b[i] < 0x80 {
				return v, i + 1
			}
		}
		return v, len(b)
	}
	free := freelistPages(b)
	out := make(map[int]tablePage)
	for p := 2; p*4096 <= len(b); p++ {
		if free[p] {
			continue // a freed page keeps its old content but holds nothing
		}
		pg := b[(p-1)*4096 : p*4096]
		cells := int(pg[3])<<8 | int(pg[4])
		hdr, skip := 8, 0
		switch pg[0] {
		case 0x0a:
		case 0x02:
			hdr, skip = 12, 4
		default:
			continue
		}
		if cells == 0 {
			continue
		}
		off := int(pg[hdr])<<8 | int(pg[hdr+1]) + skip
		_, n := uvarint(pg[off:])   // payload size
		h, m := uvarint(pg[off+n:]) // record header size
		cols, at := 0, off+n+m
		for at < off+n+int(h) {
			_, k := uvarint(pg[at:])
			at += k
			cols++
		}
		if cols == 13 || cols == 15 {
			out[p] = tablePage{cells: cells, leaf: pg[0] == 0x0a}
		}
	}
	return out
}

// freelistPages returns the pages of the SQLite file b on its freelist
// (file header offset 32: the first trunk page; each trunk page lists the
// next trunk, a count, and that many leaf page numbers).
func freelistPages(b []byte) map[int]bool {
	be32 := func(at int) int {
		if at < 0 || at+4 > len(b) {
			return 0
		}
		return int(b[at])<<24 | int(b[at+1])<<16 | int(b[at+2])<<8 | int(b[at+3])
	}
	free := make(map[int]bool)
	for trunk := be32(32); trunk > 0 && !free[trunk]; {
		free[trunk] = true
		base := (trunk - 1) * 4096
		for i := range min(be32(base+4), 1022) {
			free[be32(base+8+4*i)] = true
		}
		trunk = be32(base)
	}
	return free
}

// checkSalvaged checks that every entry of s is one of want, unchanged, and
// returns how many there are.
func checkSalvaged(t *testing.T, s *SQLite, want map[string]*mtasts.Entry) int {
	t.Helper()
	n := 0
	err := s.Range(context.Background(), func(e *mtasts.Entry) bool {
		n++
		if d := mtaststest.EntryDiff(e, want[e.Domain]); d != "" {
			t.Errorf("salvaged %s: %s", e.Domain, d)
		}
		return true
	})
	if err != nil {
		t.Fatalf("Range over the rebuilt file: %v", err)
	}
	return n
}

// setAside returns the files set aside next to path.
func setAside(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + DamagedSuffix + "*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue #10 item 5: 20 pages of garbage over leaves of the entries table.
// At open, the file is set aside and rebuilt from every entry that can still
// be read: exactly the entries on the smashed pages are lost. A file at
// schema version 3 (before the indexes were dropped) is salvaged from the
// un-migrated file, whose indexes list the lost entries too (Repair.Lost);
// since version 4 nothing lists them, and Lost counts only entries a scan
// listed but could not read.
func TestSQLiteRepairsSmashedPages(t *testing.T) {
	t.Parallel()
	for _, v3 := range []bool{false, true} {
		name := "current"
		if v3 {
			name = "version 3 with its indexes"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRepairsSmashedPages(t, v3)
		})
	}
}

// asVersion3 turns a cache file of the current schema into the version 3
// file that released mailsts wrote: the two indexes migration 4 drops.
func asVersion3(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE INDEX entries_expires_at ON entries(expires_at)`,
		`CREATE INDEX entries_last_used ON entries(last_used)`,
		`PRAGMA user_version = 3`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the log was not checkpointed into the file at close (%v)", err)
	}
}

func testRepairsSmashedPages(t *testing.T, v3 bool) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	now := time.Now()
	want := buildCache(t, path, now)
	if v3 {
		asVersion3(t, path)
	}
	leaves := make(map[int]int)
	for p, tp := range tablePages(t, path) {
		if tp.leaf {
			leaves[p] = tp.cells
		}
	}
	if len(leaves) < 60 {
		t.Fatalf("only %d table leaf pages; the test wants 20 of them among many", len(leaves))
	}
	smashed, onSmashed, seen := 0, 0, 0
	for p := 2; smashed < 20 && p < 1<<20; p++ { // every other leaf: spread over the file
		if cells, ok := leaves[p]; ok {
			if seen++; seen%2 == 0 {
				smashPages(t, path, p, 1)
				smashed++
				onSmashed += cells
			}
		}
	}
	if smashed < 20 {
		t.Fatalf("smashed %d leaves, want 20", smashed)
	}

	logger, logs := logBuffer()
	s, err := OpenSQLite(ctx, path, logger)
	if err != nil {
		t.Fatalf("OpenSQLite(damaged file) = %v; want it set aside and rebuilt", err)
	}
	defer s.Close()
	rep := s.Repaired()
	if rep == nil {
		t.Fatal("Repaired() = nil for a file with 20 smashed pages")
	}
	if !errors.Is(rep.Damage, sqlitedb.ErrDamaged) {
		t.Errorf("Repair.Damage = %v, want sqlitedb.ErrDamaged", rep.Damage)
	}
	if got := setAside(t, path); len(got) != 1 || got[0] != rep.SetAside {
		t.Errorf("files set aside = %v, want [%s]", got, rep.SetAside)
	}
	if !strings.Contains(logs(), "level=ERROR") {
		t.Errorf("no ERROR line for a repaired cache file; log:\n%s", logs())
	}
	if err := sqlitedb.QuickCheck(ctx, s.wdb); err != nil {
		t.Errorf("rebuilt file: %v", err)
	}
	n := checkSalvaged(t, s, want)
	if n != rep.Salvaged {
		t.Errorf("rebuilt file holds %d entries, Repair.Salvaged = %d", n, rep.Salvaged)
	}
	if n != damagedCacheEntries-onSmashed {
		t.Errorf("salvaged %d of %d entries; want all but the %d on the smashed pages", n, damagedCacheEntries, onSmashed)
	}
	switch {
	case v3 && rep.Lost != onSmashed:
		t.Errorf("Repair.Lost = %d, want %d (listed by the indexes, unreadable)", rep.Lost, onSmashed)
	case !v3 && rep.Lost > onSmashed:
		t.Errorf("Repair.Lost = %d, more than the %d entries on the smashed pages", rep.Lost, onSmashed)
	}

	// Reopening the rebuilt file repairs nothing.
	s.Close()
	s2, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Repaired() != nil {
		t.Errorf("second open repaired again: %+v", s2.Repaired())
	}
}

// Issue #10 item 5, as reported: 20 consecutive pages of garbage, interior
// pages of the table included. SQL cannot reach the leaves beneath a
// smashed interior page; reading the pages can: exactly the entries on the
// smashed pages are lost, and every salvaged entry is unchanged.
func TestSQLiteRepairsSmashedBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	want := buildCache(t, path, time.Now())
	const first, count = 40, 20
	onSmashed, interior := 0, 0
	for p, tp := range tablePages(t, path) {
		if p >= first && p < first+count {
			onSmashed += tp.cells
			if !tp.leaf {
				interior++
			}
		}
	}
	if interior == 0 {
		t.Fatalf("pages %d..%d hold no interior page of the table: the test misses the case", first, first+count-1)
	}
	smashPages(t, path, first, count)
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Repaired() == nil {
		t.Fatal("not repaired")
	}
	n := checkSalvaged(t, s, want)
	if n != damagedCacheEntries-onSmashed {
		t.Errorf("salvaged %d of %d entries; want all but the %d on the smashed pages", n, damagedCacheEntries, onSmashed)
	}
	t.Logf("salvaged %d of %d entries (%d on the smashed pages, %d of them interior; %d listed but unreadable)",
		n, damagedCacheEntries, onSmashed, interior, s.Repaired().Lost)
}

// Issue #10 item 5: damage found after open (OpenSQLite checks the file,
// so here the check is skipped to stand for pages damaged while running).
// Every entry either reads back unchanged or is ErrCorruptEntry, which
// Tiered treats as absent (the policy is fetched again): never an error
// that the cache turns into TEMP, and never "back store unavailable" for
// the other domains. Range goes past the damage.
func TestSQLiteDamagedWhileOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	now := time.Now()
	want := buildCache(t, path, now)
	smashPages(t, path, 40, 20)

	logger, logs := logBuffer()
	s, err := openSQLite(ctx, path, logger, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var unreadable int
	s.OnUnreadable = func(string, error) { unreadable++ }
	tr := &Tiered{Front: &Memory{}, Back: s, FrontTTL: -1}
	readable, corrupt := 0, 0
	for d, w := range want {
		e, err := s.Get(ctx, d)
		switch {
		case errors.Is(err, ErrCorruptEntry):
			corrupt++
		case err != nil:
			t.Fatalf("Get(%s) = %v; want the entry or ErrCorruptEntry", d, err)
		case e == nil:
			t.Fatalf("Get(%s) = nil, nil: an entry vanished without an error", d)
		default:
			readable++
			if diff := mtaststest.EntryDiff(e, w); diff != "" {
				t.Errorf("%s: %s", d, diff)
			}
		}
		te, err := tr.Get(ctx, d)
		if err != nil {
			t.Fatalf("Tiered.Get(%s) = %v; want an entry or none (fetch again), never an error", d, err)
		}
		if te == nil && err == nil && e != nil {
			t.Errorf("Tiered.Get(%s) = nil although the file has it", d)
		}
	}
	if corrupt == 0 {
		t.Fatal("no entry hit the smashed pages: the test damages nothing")
	}
	if unreadable < corrupt {
		t.Errorf("OnUnreadable called %d times for %d unreadable entries", unreadable, corrupt)
	}
	if !s.Damaged() || !strings.Contains(logs(), "level=ERROR") {
		t.Errorf("Damaged() = %v; log:\n%s", s.Damaged(), logs())
	}
	var ranged int
	if err := s.Range(ctx, func(*mtasts.Entry) bool { ranged++; return true }); err != nil {
		t.Fatalf("Range over a damaged file = %v; want every readable entry", err)
	}
	if ranged < readable {
		t.Errorf("Range visited %d entries; %d are readable one by one", ranged, readable)
	}
	t.Logf("%d readable, %d unreadable, Range visited %d", readable, corrupt, ranged)
}

// Issue #10 item 5: a damaged header (a file that is not a database at
// all) is set aside and replaced; nothing can be salvaged from it.
func TestSQLiteRepairsDamagedHeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	buildCache(t, path, time.Now())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("this is not a SQLite header, no."), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("OpenSQLite(bad header) = %v; want it set aside and replaced", err)
	}
	defer s.Close()
	rep := s.Repaired()
	if rep == nil || !errors.Is(rep.Damage, sqlitedb.ErrDamaged) {
		t.Fatalf("Repaired() = %+v, want damage matching sqlitedb.ErrDamaged", rep)
	}
	if len(setAside(t, path)) != 1 {
		t.Errorf("damaged file not set aside: %v", setAside(t, path))
	}
	// The new file works.
	if err := s.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, time.Now(), 3600, time.Time{})); err != nil {
		t.Fatal(err)
	}
}

// Issue #10 item 5: a 0-byte file where a cache was expected (mailsts never
// leaves one) is reported and set aside, not silently taken for a new cache.
func TestSQLiteEmptyFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logger, logs := logBuffer()
	s, err := OpenSQLite(ctx, path, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep := s.Repaired()
	if rep == nil || !errors.Is(rep.Damage, ErrEmptyFile) {
		t.Fatalf("Repaired() = %+v, want damage matching ErrEmptyFile", rep)
	}
	if len(setAside(t, path)) != 1 || !strings.Contains(logs(), "level=ERROR") {
		t.Errorf("set aside %v; log:\n%s", setAside(t, path), logs())
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("new file: %v, %v", fi, err)
	}
}

// A new cache file appears whole (built aside and linked into place): never
// 0 bytes, no temporary files left, and a sound file is not repaired.
func TestSQLiteCreatesWholeFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.db")
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Repaired() != nil {
		t.Errorf("new file repaired: %+v", s.Repaired())
	}
	s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("new cache file: %v, %v", fi, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.new-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// Issue #10 item 6: a relative path (--state-dir relstate) opens the file
// it names; it failed with "invalid uri authority".
func TestSQLiteRelativePath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	abs := filepath.Join(t.TempDir(), "relstate", "cache.db")
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || filepath.IsAbs(rel) {
		t.Fatalf("relative path: %q, %v", rel, err)
	}
	s, err := OpenSQLite(ctx, rel, nil)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", rel, err)
	}
	defer s.Close()
	if s.Path() != abs {
		t.Errorf("Path() = %q, want %q", s.Path(), abs)
	}
	if err := s.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, time.Now(), 3600, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		t.Errorf("cache file at %s: %v", abs, err)
	}
}

// The repair reads pages, but never brings back a purged entry: freed
// pages still hold deleted rows, and are skipped (so are deleted cells of
// live pages).
func TestSQLiteRepairKeepsPurgesPurged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	want := buildCache(t, path, time.Now())
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var purged []string
	for i := 0; i < damagedCacheEntries; i += 3 {
		purged = append(purged, fmt.Sprintf("d%04d.example", i))
	}
	for i := 700; i < 1100; i++ { // whole pages freed
		purged = append(purged, fmt.Sprintf("d%04d.example", i))
	}
	if _, err := s.Purge(ctx, purged...); err != nil {
		t.Fatal(err)
	}
	var free int
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil || free == 0 {
		t.Fatalf("freelist_count = %d, %v: the test frees no page", free, err)
	}
	s.Close()
	pages := tablePages(t, path)
	smashed := 0
	for p, tp := range pages {
		if tp.leaf && smashed < 3 {
			smashPages(t, path, p, 1)
			smashed++
		}
	}
	s, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Repaired() == nil {
		t.Fatal("not repaired")
	}
	for _, d := range purged {
		delete(want, d)
		if e, err := s.Get(ctx, d); e != nil || err != nil {
			t.Errorf("purged %s is back after the repair: %v, %v", d, e, err)
		}
	}
	if n := checkSalvaged(t, s, want); n == 0 {
		t.Error("nothing salvaged")
	}
}

// A damaged file is hostile input to the page reader: it must never panic
// or loop, whatever the bytes. Seeds: a sound cache file and damaged ones.
func FuzzEntriesFromPages(f *testing.F) {
	path := filepath.Join(f.TempDir(), "cache.db")
	s, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 40 {
		s.Put(context.Background(), entryAt(fmt.Sprintf("d%02d.example", i), mtasts.ModeEnforce, time.Now(), 3600, time.Time{}))
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, at := range []int{16, 20, 32, 4096, 4096 + 3, 2*4096 + 8} {
		if at < len(b) {
			d := bytes.Clone(b)
			d[at] ^= 0xff
			f.Add(d)
		}
	}
	f.Add([]byte("SQLite format 3\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for d, e := range entriesFromPages(b) {
			if d != e.Domain || checkDomain(d) != nil {
				t.Fatalf("entry %q under key %q", e.Domain, d)
			}
		}
	})
}

// DamageOf judges a file as OpenSQLite would, changing nothing.
func TestDamageOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := DamageOf(ctx, filepath.Join(dir, "missing.db")); err != nil {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if err := DamageOf(ctx, empty); !errors.Is(err, ErrEmptyFile) {
		t.Errorf("empty file: %v, want ErrEmptyFile", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("junk", 2000)), 0o600)
	if err := DamageOf(ctx, junk); !errors.Is(err, sqlitedb.ErrDamaged) {
		t.Errorf("junk file: %v, want sqlitedb.ErrDamaged", err)
	}
	if b, _ := os.ReadFile(junk); string(b) != strings.Repeat("junk", 2000) {
		t.Error("DamageOf changed the file")
	}
	good := filepath.Join(dir, "good.db")
	buildCache(t, good, time.Now())
	if err := DamageOf(ctx, good); err != nil {
		t.Errorf("sound file: %v", err)
	}
}

// Salvage reads a file that was never migrated to schema version 3 (the
// last failure's class as columns), by SQL and page by page: its rows keep
// the failure as text only, for mtasts's legacy reading.
func TestSalvageBeforeV3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(schemaV1DDL(),
		`INSERT INTO entries (domain, no_policy_until, failed_at, failures, last_error)
			VALUES ('legacy.example', 4102444800000, 1735689600000, 1, 'dns-error+temporary: SERVFAIL')`,
		`PRAGMA user_version = 2`,
	) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	check := func(how string, e *mtasts.Entry) {
		t.Helper()
		if e == nil || e.Domain != "legacy.example" || e.LastError != "dns-error+temporary: SERVFAIL" || e.LastErrorType != "" || e.LastErrorTemporary || e.Failures != 1 {
			t.Errorf("%s: %+v", how, e)
		}
	}
	sdb, err := sqlitedb.Open(path, sqliteOptions)
	if err != nil {
		t.Fatal(err)
	}
	var bySQL []*mtasts.Entry
	s := &SQLite{path: path, logger: discard, db: sdb, wdb: sdb.W, rdb: sdb.R}
	if lost, err := s.salvage(ctx, sdb.W, func(e *mtasts.Entry) bool { bySQL = append(bySQL, e); return true }); err != nil || len(lost) != 0 || len(bySQL) != 1 {
		t.Fatalf("salvage by SQL = %v, lost %v, %v", bySQL, lost, err)
	}
	check("by SQL", bySQL[0])
	sdb.Close()
	raw, err := readPages(path)
	if err != nil || len(raw) != 1 {
		t.Fatalf("readPages = %v, %v", raw, err)
	}
	check("page by page", raw["legacy.example"])
	es, lost := salvageFile(ctx, path, discard)
	if len(es) != 1 || lost != 0 {
		t.Fatalf("salvageFile = %v, %d lost", es, lost)
	}
	check("salvaged", es[0])
}
