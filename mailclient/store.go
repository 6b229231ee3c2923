package mailclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store keeps latches per account and protocol. Implementations must be
// safe for concurrent use.
type Store interface {
	// Get returns the latch of account and p; ok is false when none is
	// kept.
	Get(ctx context.Context, account string, p Protocol) (l Latch, ok bool, err error)
	// Put replaces it.
	Put(ctx context.Context, account string, p Protocol, l Latch) error
	// Delete forgets it; deleting nothing is not an error.
	Delete(ctx context.Context, account string, p Protocol) error
}

// ErrStore is wrapped by every error of the stores of this package: the
// latch could not be read or written. A client must then refuse the
// connection (it cannot tell whether it would fall below a latch).
var ErrStore = errors.New("mailclient: latch store")

func storeKey(account string, p Protocol) string {
	return strings.ToLower(account) + " " + string(p)
}

// MemoryStore keeps latches in memory. The zero value is ready.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Latch
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, account string, p Protocol) (Latch, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[storeKey(account, p)]
	return l, ok, nil
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, account string, p Protocol, l Latch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Latch{}
	}
	s.m[storeKey(account, p)] = l
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, account string, p Protocol) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, storeKey(account, p))
	return nil
}

// FileStore keeps latches in one JSON file. Every change is written to a
// temporary file in the same directory, synced and renamed over the old
// one, so a crash leaves the old or the new file, never a torn one. Changes
// are serialized within the process by a mutex and between processes by
// an advisory lock on Path+".lock" (on Unix), each re-reading the file
// first, so two clients sharing a file do not lose each other's latches.
type FileStore struct {
	// Path of the file; its directory must exist. It is created with mode
	// 0600 on the first Put.
	Path string

	mu sync.Mutex
}

// fileData is the file's format.
type fileData struct {
	Version int              `json:"version"`
	Latches map[string]Latch `json:"latches"`
}

// maxStoreFile caps what is read: a latch file holds a few accounts.
const maxStoreFile = 4 << 20

func (s *FileStore) read() (fileData, error) {
	d := fileData{Version: 1, Latches: map[string]Latch{}}
	f, err := os.Open(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("%w: %w", ErrStore, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStoreFile+1))
	if err != nil {
		return d, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if len(b) > maxStoreFile {
		return d, fmt.Errorf("%w: %s is larger than %d bytes", ErrStore, s.Path, maxStoreFile)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%w: %s: %w", ErrStore, s.Path, err)
	}
	if d.Version != 1 {
		return d, fmt.Errorf("%w: %s: unknown version %d", ErrStore, s.Path, d.Version)
	}
	if d.Latches == nil {
		d.Latches = map[string]Latch{}
	}
	return d, nil
}

func (s *FileStore) write(d fileData) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.Path), "."+filepath.Base(s.Path)+".*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	name := tmp.Name()
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, s.Path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}

// update runs fn on the file's data under both locks and writes the result.
func (s *FileStore) update(fn func(*fileData)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(s.Path + ".lock")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	defer unlock()
	d, err := s.read()
	if err != nil {
		return err
	}
	fn(&d)
	return s.write(d)
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, account string, p Protocol) (Latch, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.read()
	if err != nil {
		return Latch{}, false, err
	}
	l, ok := d.Latches[storeKey(account, p)]
	return l, ok, nil
}

// Put implements Store.
func (s *FileStore) Put(_ context.Context, account string, p Protocol, l Latch) error {
	return s.update(func(d *fileData) { d.Latches[storeKey(account, p)] = l })
}

// Delete implements Store.
func (s *FileStore) Delete(_ context.Context, account string, p Protocol) error {
	return s.update(func(d *fileData) { delete(d.Latches, storeKey(account, p)) })
}
