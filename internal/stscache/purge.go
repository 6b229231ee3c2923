package stscache

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// Purge propagation. A process that purges (`mailsts cache purge`) must
// reach the daemons holding the purged domains in memory, where they would
// otherwise keep answering from them.
const (
	// purgePollEvery is how often a daemon on SQLite reads the file's purge
	// log, so that a purge reaches it without a restart: one indexed query,
	// off the query path. On Redis it is how often dropped domains are
	// counted in the log.
	purgePollEvery = 2 * time.Second
	// purgeBatch and purgePages bound one poll; the rest waits for the next.
	purgeBatch = 1000
	purgePages = 10
	// purgeKeep is how long purge log records are kept: far longer than a
	// poll, so that only a daemon stopped (SIGSTOP, suspended VM) for longer
	// misses records, and it then notices the gap and forgets everything.
	purgeKeep = time.Hour
)

// Purge deletes domains (every entry when all) and returns how many
// entries there were, so that every process using the cache forgets them
// ([Cache.WatchPurges]). SQLite: one transaction that also logs the purge
// (purge all as one record: daemons drop everything, including what they
// hold that the file lost). Redis: a delete per domain, which leaves a
// tombstone and announces it (Pub/Sub). Memory: the entries of this
// process only. This process's memory forgets them in every case.
func (c *Cache) Purge(ctx context.Context, domains []string, all bool) (int, error) {
	if c.sqlite != nil {
		var n int
		var err error
		if all {
			n, err = c.sqlite.PurgeAll(ctx)
		} else {
			n, err = c.sqlite.Purge(ctx, domains...)
		}
		if err == nil {
			// This process forgets them too, as the others will.
			c.dropFromMemory(ctx, all, domains)
		}
		return n, err
	}
	if all {
		// Entries the file still has leave memory: a miss must read the
		// file again (see Tiered.Load), so this counts as a drop.
		c.front.drops.Add(1)
		var held []string
		err := c.store.Range(ctx, func(e *mtasts.Entry) bool { held = append(held, e.Domain); return true })
		if err != nil {
			return 0, err
		}
		slices.Sort(held)
		for i, d := range held {
			if err := c.store.Delete(ctx, d); err != nil {
				return i, err
			}
		}
		return len(held), nil
	}
	n := 0
	for _, d := range domains {
		e, err := c.store.Get(ctx, d)
		if err != nil {
			return n, err
		}
		if err := c.store.Delete(ctx, d); err != nil {
			return n, err
		}
		if e != nil {
			n++
		}
	}
	return n, nil
}

// WatchPurges follows the purges other processes make ([Cache.Purge]) and
// drops the purged domains from memory, until ctx ends; on a memory cache
// it returns at once. After each poll of the SQLite purge log (every
// `every`, zero: 2 s) and each Redis announcement, dropped, when set, is
// called with the number of domains dropped from memory (-1: all of them;
// 0: none, and when the Redis subscription is (re)established): a caller
// that memoises answers derived from entries forgets them when it is not
// 0.
//
// SQLite: Tiered never re-reads the file for a domain it holds, so the
// daemon would answer from a purged domain until a restart. The next query
// for it reads the file, finds nothing and fetches the policy again. The
// purges made since `since` (when the daemon began loading the file) are
// applied.
//
// Redis: a daemon neither keeps answering from a purged domain nor, after
// FrontTTL, writes a purged enforce policy back (Tiered restores valid
// policies Redis lost). When the subscription is (re)established, purges
// may have been missed and Redis may have lost its keys (a restart without
// persistence): memory is reconciled with Redis ([Tiered.Resync]) instead
// of dropped, which would lose enforce policies an attacker could then
// keep us from fetching again. Dropped domains are counted in the log
// every 2 s, not one line each (purging all on Redis deletes domain by
// domain).
func (c *Cache) WatchPurges(ctx context.Context, since time.Time, every time.Duration, dropped func(n int)) {
	if dropped == nil {
		dropped = func(int) {}
	}
	switch {
	case c.sqlite != nil:
		c.pollPurges(ctx, since, every, dropped)
	case c.redis != nil:
		c.followRedisPurges(ctx, dropped)
	}
}

// pollPurges follows the SQLite file's purge log, written by Purge (and
// any other process deleting from the file).
func (c *Cache) pollPurges(ctx context.Context, since time.Time, every time.Duration, dropped func(int)) {
	if every <= 0 {
		every = purgePollEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	seq := int64(-1) // not read yet
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if seq < 0 {
			s, err := c.sqlite.PurgeSeqBefore(ctx, since)
			if err != nil {
				if ctx.Err() == nil {
					c.logger.Warn("reading the cache purge log", "error", err)
				}
				continue
			}
			seq = s
		}
		var err error
		seq, err = c.applyPurges(ctx, seq, dropped)
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("reading the cache purge log", "error", err)
		}
	}
}

// applyPurges reads the purge log after seq, drops what it names from
// memory and returns the last seq read.
func (c *Cache) applyPurges(ctx context.Context, seq int64, dropped func(int)) (int64, error) {
	all := false
	var domains []string
	var err error
	for range purgePages {
		var ps []Purge
		ps, err = c.sqlite.PurgesAfter(ctx, seq, purgeBatch)
		if err != nil {
			break
		}
		if len(ps) > 0 && ps[0].Seq != seq+1 {
			// Records were trimmed before this daemon read them (it was
			// stopped for longer than purgeKeep): forget everything.
			c.logger.Warn("cache purges were missed; dropping every cached policy from memory (the file still has them)",
				"after", seq, "next", ps[0].Seq)
			all = true
		}
		for _, p := range ps {
			if p.Domain == "" {
				all = true
			} else {
				domains = append(domains, p.Domain)
			}
			seq = p.Seq
		}
		if len(ps) < purgeBatch {
			break
		}
	}
	if !all && len(domains) == 0 {
		dropped(0)
		return seq, err
	}
	n := c.dropFromMemory(ctx, all, domains)
	if !all {
		c.logger.Info("cache purged: dropped domains from memory", "count", n, "domains", strings.Join(domains[:min(n, 10)], " "))
	}
	dropped(n)
	return seq, err
}

// dropFromMemory drops domains, or every entry when all (which it logs),
// from memory and returns the number of domains dropped (-1 for all).
// Front.Delete, not Store.Delete: the back store already lost the
// entries, and a delete through the Tiered would announce another purge.
func (c *Cache) dropFromMemory(ctx context.Context, all bool, domains []string) int {
	if all {
		// Entries the file still has leave memory: a miss must read the
		// file again (see Tiered.Load), so this counts as a drop.
		c.front.drops.Add(1)
		var held []string
		c.front.Range(ctx, func(e *mtasts.Entry) bool { held = append(held, e.Domain); return true })
		for _, dom := range held {
			c.forget(ctx, dom)
		}
		if len(held) > 0 {
			c.logger.Info("cache purged: dropped every policy from memory", "entries", len(held))
		}
		return -1
	}
	for _, dom := range domains {
		c.forget(ctx, dom)
	}
	return len(domains)
}

// forget drops domain from memory, under the Tiered's per-domain lock when
// there is a back store (a read racing the purge cannot put it back).
func (c *Cache) forget(ctx context.Context, domain string) {
	if c.tiered != nil {
		c.tiered.Forget(ctx, domain)
		return
	}
	c.front.Delete(ctx, domain)
}

// followRedisPurges drops from memory the domains other processes delete
// from the shared Redis, as Redis.Delete announces them.
func (c *Cache) followRedisPurges(ctx context.Context, dropped func(int)) {
	var count atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(purgePollEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := count.Swap(0); n > 0 {
					c.logger.Info("cache purged: dropped domains from memory", "count", n)
				}
			}
		}
	}()
	c.redis.FollowPurges(ctx, func(dom string) {
		n := 0
		if dom == "" {
			c.tiered.Resync()
		} else {
			n = c.dropFromMemory(ctx, false, []string{dom})
			count.Add(int64(n))
		}
		dropped(n)
	})
	<-done
}
