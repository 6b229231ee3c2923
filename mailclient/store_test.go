package mailclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The FileStore: latches survive a new instance, concurrent writers (two
// instances on one file, as two client processes) lose nothing, writes
// leave no temporary files, and a damaged file is ErrStore.
func TestFileStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "latches.json")
	ctx := context.Background()
	a, b := &FileStore{Path: path}, &FileStore{Path: path}
	if _, ok, err := a.Get(ctx, "u@x.example", IMAP); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			l := Latch{TLS: true, Host: fmt.Sprint("h", i), Since: time.Unix(int64(i), 0).UTC()}
			if err := s.Put(ctx, fmt.Sprintf("u%d@x.example", i), IMAP, l); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c := &FileStore{Path: path}
	for i := range 20 {
		l, ok, err := c.Get(ctx, fmt.Sprintf("U%d@x.example", i), IMAP)
		if !ok || err != nil || l.Host != fmt.Sprint("h", i) || !l.TLS {
			t.Errorf("account %d: %+v %v %v", i, l, ok, err)
		}
	}
	if err := c.Delete(ctx, "u3@x.example", IMAP); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Get(ctx, "u3@x.example", IMAP); ok {
		t.Error("deleted latch still there")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 { // the file and its lock
		t.Errorf("files left: %v", entries)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx, "u1@x.example", IMAP); !errors.Is(err, ErrStore) {
		t.Errorf("damaged file: %v", err)
	}
	if err := a.Put(ctx, "u1@x.example", IMAP, Latch{}); !errors.Is(err, ErrStore) {
		t.Errorf("Put over a damaged file: %v (it must not overwrite it)", err)
	}
}

// A store that fails makes the Dialer refuse to connect: it cannot tell
// whether a connection would fall below a latch.
func TestStoreFailureRefuses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "latches.json")
	if err := os.WriteFile(path, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := shared.Net(t)
	d := newDialer(t, n)
	d.Store = &FileStore{Path: path}
	if _, err := d.Dial(context.Background(), "u@clients.example", endpoint(n, IMAPS, "mail.clients.example")); !errors.Is(err, ErrStore) {
		t.Errorf("got %v, want ErrStore", err)
	}
}
