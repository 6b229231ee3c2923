package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Lock timing shared by the PostgreSQL and Redis storages.
const (
	// DefaultLockLease is how long a lock outlives its holder: the holder
	// renews it every third of this while it runs, so a lock whose
	// holder died is taken over after at most this long.
	DefaultLockLease = time.Minute
	// lockPollMax caps the wait between two attempts to take a busy lock.
	lockPollMax = time.Second
)

// ErrLockNotHeld is returned by Unlock for a name this storage value did
// not lock (or whose lock expired and was taken over by another holder).
var ErrLockNotHeld = errors.New("certs: lock not held")

// lockBackend is the primitive a distributed lock needs.
type lockBackend interface {
	// acquire takes name for token if it is free or its lease expired.
	acquire(ctx context.Context, name, token string, lease time.Duration) (bool, error)
	// renew extends the lease if token still holds name.
	renew(ctx context.Context, name, token string, lease time.Duration) (bool, error)
	// release frees name if token holds it.
	release(ctx context.Context, name, token string) (bool, error)
}

// locker implements certmagic's Locker over a lockBackend: Lock blocks
// (polling, honouring ctx) until the lock is free or stale, and a held
// lock's lease is renewed in the background until Unlock.
type locker struct {
	b     lockBackend
	lease time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	held map[string]*heldLock
}

type heldLock struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
}

func newLocker(b lockBackend, lease time.Duration, log *slog.Logger) *locker {
	if lease <= 0 {
		lease = DefaultLockLease
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &locker{b: b, lease: lease, log: log, held: map[string]*heldLock{}}
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Lock implements certmagic.Locker.
func (l *locker) Lock(ctx context.Context, name string) error {
	token := newToken()
	wait := 50 * time.Millisecond
	for {
		ok, err := l.b.acquire(ctx, name, token, l.lease)
		if err != nil {
			return fmt.Errorf("certs: lock %q: %w", name, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("certs: lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
	rctx, stop := context.WithCancel(context.Background())
	h := &heldLock{token: token, stop: stop, done: make(chan struct{})}
	go l.keepAlive(rctx, name, h)
	l.mu.Lock()
	if old := l.held[name]; old != nil {
		// Our earlier lock expired and was taken over; its renewer has
		// nothing left to renew.
		old.stop()
	}
	l.held[name] = h
	l.mu.Unlock()
	return nil
}

func (l *locker) keepAlive(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	tick := time.NewTicker(l.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, l.lease/3)
		ok, err := l.b.renew(rctx, name, h.token, l.lease)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			l.log.Warn("certificate storage lock not renewed", "lock", name, "err", err)
		case err == nil && !ok:
			l.log.Error("certificate storage lock lost to another holder", "lock", name)
			return
		}
	}
}

// Unlock implements certmagic.Locker.
func (l *locker) Unlock(ctx context.Context, name string) error {
	l.mu.Lock()
	h := l.held[name]
	delete(l.held, name)
	l.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: %q", ErrLockNotHeld, name)
	}
	h.stop()
	<-h.done
	ok, err := l.b.release(ctx, name, h.token)
	if err != nil {
		return fmt.Errorf("certs: unlock %q: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("%w: %q expired and was taken over", ErrLockNotHeld, name)
	}
	return nil
}

// RenewLockLease implements certmagic.LockLeaseRenewer.
func (l *locker) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	l.mu.Lock()
	h := l.held[name]
	l.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: %q", ErrLockNotHeld, name)
	}
	ok, err := l.b.renew(ctx, name, h.token, max(lease, l.lease))
	if err != nil {
		return fmt.Errorf("certs: renew lock %q: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("%w: %q expired and was taken over", ErrLockNotHeld, name)
	}
	return nil
}

// abandon stops renewing name without releasing it, as if the holder had
// died (for tests of stale-lock takeover).
func (l *locker) abandon(name string) {
	l.mu.Lock()
	h := l.held[name]
	delete(l.held, name)
	l.mu.Unlock()
	if h != nil {
		h.stop()
		<-h.done
	}
}

// close stops every renewer (the locks expire on their own).
func (l *locker) close() {
	l.mu.Lock()
	hs := l.held
	l.held = map[string]*heldLock{}
	l.mu.Unlock()
	for _, h := range hs {
		h.stop()
		<-h.done
	}
}
