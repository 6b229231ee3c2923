package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/internal/stscache"
)

// cacheStatusReport is what `cache status` prints (--json: this object).
type cacheStatusReport struct {
	// Configured is the store the configuration asks for: sqlite, redis
	// or memory.
	Configured string `json:"configured"`
	// Path is the SQLite file (absolute); Where the Redis address.
	Path  string `json:"path,omitempty"`
	Where string `json:"where,omitempty"`
	// Exists: the SQLite file is there. Entries: how many it holds.
	Exists  bool `json:"exists"`
	Entries *int `json:"entries,omitempty"`
	// Durable: the configured store survives a restart.
	Durable bool `json:"durable"`
	// Writable: this user can open the file (or create it) read-write.
	Writable bool `json:"writable"`
	// Owner is the file's (or, when it does not exist yet, the directory's)
	// numeric owner.
	Owner *sqlitedb.Owner `json:"owner,omitempty"`
	// Damaged is what PRAGMA quick_check found wrong ("" when sound).
	Damaged string `json:"damaged,omitempty"`
	// SetAside lists damaged files set aside next to the file.
	SetAside []string `json:"set_aside,omitempty"`
	// Problems, in words; none means all is well.
	Problems []string `json:"problems"`
	// Daemon is what the last policyd recorded in its status file.
	Daemon *daemonStatus `json:"daemon,omitempty"`
}

type daemonStatus struct {
	policyd.StoreStatus
	StatusFile string `json:"status_file"`
	Running    bool   `json:"running"`
}

// cacheStatus reports on the configured store without changing anything:
// it neither creates nor repairs the file (policyd and the other cache
// subcommands do), so it is safe while policyd runs.
func cacheStatus(ctx context.Context, env Env, cfg *policyd.Config, asJSON bool) int {
	rep := cacheStatusReport{Configured: cfg.Cache.Type, Problems: []string{}}
	switch cfg.Cache.Type {
	case "memory":
		rep.Where = "memory"
		rep.Problems = append(rep.Problems, "cache.type is memory: cached policies do not survive a restart (STS-CACHE-10)")
	case "redis":
		rep.Where, rep.Durable, rep.Writable = cfg.Cache.Redis.Address+" prefix "+cfg.Cache.Redis.Prefix, true, true
	default:
		rep.Durable = true
		sqliteStatus(ctx, &rep, policyd.StatePath(cfg, env.getenv))
	}
	if st, err := policyd.ReadStatus(policyd.StatusPath(cfg, env.getenv)); err == nil {
		ds := &daemonStatus{StoreStatus: *st, StatusFile: policyd.StatusPath(cfg, env.getenv), Running: processRunning(st.PID)}
		rep.Daemon = ds
		if ds.Running && ds.BackFailing {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the running policyd (pid %d) finds its %s store failing since %s: %s", ds.PID, ds.Kind, fmtTime(ds.BackFailingSince), ds.BackError))
		}
		if ds.Running && ds.Degraded != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the running policyd (pid %d) fell back to memory: %s", ds.PID, ds.Degraded))
		}
		if ds.Running && ds.Damaged {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the running policyd (pid %d) found the file damaged; restart it to set the file aside and rebuild it", ds.PID))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		rep.Problems = append(rep.Problems, err.Error())
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printCacheStatus(env, &rep)
	}
	if len(rep.Problems) > 0 {
		return ExitFailure
	}
	return ExitOK
}

func sqliteStatus(ctx context.Context, rep *cacheStatusReport, path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return
	}
	rep.Path = abs
	rep.SetAside, _ = filepath.Glob(abs + stscache.DamagedSuffix + "*")
	rep.SetAside = slices.DeleteFunc(rep.SetAside, func(p string) bool {
		return strings.HasSuffix(p, "-wal") || strings.HasSuffix(p, "-shm") // the set-aside file's own log
	})
	_, err = os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(abs)
		rep.Owner = fileOwner(dir)
		if err := canWrite(dir, true); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s does not exist and cannot be created by this user: %v", abs, err))
			return
		}
		rep.Writable = true
		return
	case err != nil:
		rep.Problems = append(rep.Problems, err.Error())
		return
	}
	rep.Exists = true
	rep.Owner = fileOwner(abs)
	if err := canWrite(abs, false); err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("this user cannot write %s: %v", abs, err))
	} else if err := canWrite(filepath.Dir(abs), true); err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("this user cannot create the -wal and -shm files next to %s: %v", abs, err))
	} else {
		rep.Writable = true
	}
	if err := stscache.DamageOf(ctx, abs); err != nil {
		if errors.Is(err, sqlitedb.ErrDamaged) || errors.Is(err, stscache.ErrEmptyFile) {
			rep.Damaged = err.Error()
			rep.Problems = append(rep.Problems, "the file is damaged: policyd sets it aside and rebuilds it from what can be read at its next start")
		} else {
			rep.Problems = append(rep.Problems, fmt.Sprintf("cannot read %s: %v", abs, err))
		}
		return
	}
	n, err := stscache.CountEntries(ctx, abs) // changes nothing
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return
	}
	rep.Entries = &n
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printCacheStatus(env Env, rep *cacheStatusReport) {
	w := env.Stdout
	fmt.Fprintf(w, "configured store: %s\n", rep.Configured)
	if rep.Path != "" {
		fmt.Fprintf(w, "file:             %s\n", rep.Path)
		fmt.Fprintf(w, "exists:           %s\n", yesNo(rep.Exists))
		if rep.Entries != nil {
			fmt.Fprintf(w, "entries:          %d\n", *rep.Entries)
		}
		fmt.Fprintf(w, "writable by you:  %s\n", yesNo(rep.Writable))
		if rep.Owner != nil {
			fmt.Fprintf(w, "owner:            uid %d gid %d\n", rep.Owner.UID, rep.Owner.GID)
		}
		if rep.Damaged != "" {
			fmt.Fprintf(w, "damaged:          %s\n", rep.Damaged)
		}
		for _, p := range rep.SetAside {
			fmt.Fprintf(w, "set aside:        %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "where:            %s\n", rep.Where)
	}
	fmt.Fprintf(w, "durable:          %s\n", yesNo(rep.Durable))
	if d := rep.Daemon; d != nil {
		state := "not running"
		if d.Running {
			state = "running"
		}
		fmt.Fprintf(w, "policyd:          pid %d (%s), started %s, status %s\n", d.PID, state, fmtTime(d.Started), d.StatusFile)
		fmt.Fprintf(w, "  store in use:   %s %s (durable: %s)\n", d.Kind, d.Where, yesNo(d.Durable))
		if d.Degraded != "" {
			fmt.Fprintf(w, "  FELL BACK TO MEMORY: %s\n", d.Degraded)
		}
		if r := d.Repair; r != nil {
			fmt.Fprintf(w, "  repaired at start: %s set aside (%s); %s salvaged, %d unreadable\n", r.SetAside, r.Damage, plural(r.Salvaged, "entry", "entries"), r.Lost)
		}
		if d.Damaged {
			fmt.Fprintln(w, "  found the file damaged while running")
		}
		if d.ResolverValidates != "" {
			fmt.Fprintf(w, "  resolver validates DNSSEC: %s\n", termSafe(d.ResolverValidates))
		}
		if d.BackFailing {
			fmt.Fprintf(w, "  STORE FAILING since %s (%s): answering from memory and fresh lookups, %s waiting to be written back\n",
				fmtTime(d.BackFailingSince), termSafe(d.BackError), plural(d.Pending, "entry", "entries"))
		}
	} else {
		fmt.Fprintln(w, "policyd:          no status file (not started with this state directory)")
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}

// refuseRepairUnderDaemon: a cache subcommand would set a damaged file
// aside and rebuild it; when the running policyd uses that file, it would
// go on with the set-aside copy (its writes and the purge log out of
// reach). Refuse instead, and say to restart policyd, which repairs it.
func refuseRepairUnderDaemon(ctx context.Context, env Env, cfg *policyd.Config, sub string) (int, bool) {
	if cfg.Cache.Type == "memory" || cfg.Cache.Type == "redis" {
		return 0, false
	}
	st, err := policyd.ReadStatus(policyd.StatusPath(cfg, env.getenv))
	if err != nil || st.Kind != "sqlite" || !processRunning(st.PID) {
		return 0, false
	}
	path, err := filepath.Abs(policyd.StatePath(cfg, env.getenv))
	if err != nil || st.Where != path {
		return 0, false
	}
	if err := stscache.DamageOf(ctx, path); errors.Is(err, sqlitedb.ErrDamaged) || errors.Is(err, stscache.ErrEmptyFile) {
		fmt.Fprintf(env.Stderr, "mailsts cache %s: %s is damaged (%v) and policyd (pid %d) is using it; "+
			"restart policyd: it sets the file aside and rebuilds it from what can be read\n", sub, path, err, st.PID)
		return ExitError, true
	}
	return 0, false
}
