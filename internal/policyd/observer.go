package policyd

import (
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// DaemonObserver receives everything the daemon reports for metrics: the
// Responder's answers, the Cache's lookups and fetches, the listeners'
// connections, background refreshes and the state of the cache store.
// Methods must be fast and safe for concurrent use.
type DaemonObserver interface {
	Observer
	mtasts.Observer
	postfix.Observer
	// Refreshed counts background refreshes that succeeded and failed.
	Refreshed(ok, failed int)
	// CacheOpened says whether the store survives a restart, and whether
	// it is a fall back to memory from a SQLite file that could not be
	// opened.
	CacheOpened(durable, fellBack bool)
	// CacheDegraded says whether the back store is failing.
	CacheDegraded(failing bool)
	// CacheRepaired counts a damaged cache file set aside and rebuilt.
	CacheRepaired()
	// CacheUnreadable counts a cache entry that could not be read.
	CacheUnreadable()
}

// CacheSizer is an optional DaemonObserver method: it is given the
// count of the cache's entries, to read when it likes (a metrics scrape).
type CacheSizer interface {
	CacheSize(entries func() int)
}

// nopObserver is the DaemonObserver of a Daemon without one.
type nopObserver struct{}

func (nopObserver) Query(string, string, time.Duration)           {}
func (nopObserver) MXRecovery(bool)                               {}
func (nopObserver) DANEDecision(string)                           {}
func (nopObserver) Answered(string, mtasts.Source, error)         {}
func (nopObserver) Fetched(string, time.Duration, error)          {}
func (nopObserver) ConnOpened()                                   {}
func (nopObserver) ConnClosed()                                   {}
func (nopObserver) Request(string, postfix.Status, time.Duration) {}
func (nopObserver) ProtocolError(error)                           {}
func (nopObserver) Refreshed(int, int)                            {}
func (nopObserver) CacheOpened(bool, bool)                        {}
func (nopObserver) CacheDegraded(bool)                            {}
func (nopObserver) CacheRepaired()                                {}
func (nopObserver) CacheUnreadable()                              {}
