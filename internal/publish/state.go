package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/atomicfile"
	"github.com/mailsts/mailsts/mtasts"
)

// StateFileName is the state file's name in the state directory.
const StateFileName = "publish-state.json"

// maxEarlier bounds the earlier policies kept per domain.
const maxEarlier = 32

// State is what `mailsts serve` records about the policies it served, in
// a small JSON file (publish.state_file): for each domain, when its
// current mode started (promote's testing period) and the earlier
// policies senders may still hold in their caches (the MX change
// warnings, retire's date). serve writes it whenever the served set
// changes; the policy commands read it.
type State struct {
	Domains map[string]*DomainState `json:"domains"`
}

// DomainState is the record of one domain.
type DomainState struct {
	// Mode is the mode served since ModeSince.
	Mode      string    `json:"mode"`
	ModeSince time.Time `json:"mode_since"`
	// ID, MX and MaxAge describe the policy served since ServedSince.
	ID          string    `json:"id"`
	MX          []string  `json:"mx"`
	MaxAge      int64     `json:"max_age"`
	ServedSince time.Time `json:"served_since"`
	// Earlier are policies served before, kept while senders may still
	// cache them (until ReplacedAt + MaxAge).
	Earlier []EarlierPolicy `json:"earlier,omitempty"`
}

// EarlierPolicy is a policy that was replaced.
type EarlierPolicy struct {
	ID         string    `json:"id"`
	Mode       string    `json:"mode"`
	MX         []string  `json:"mx"`
	MaxAge     int64     `json:"max_age"`
	ReplacedAt time.Time `json:"replaced_at"`
}

// CachedUntil is when the last sender's cached copy expires at the latest.
func (e EarlierPolicy) CachedUntil() time.Time {
	return e.ReplacedAt.Add(time.Duration(e.MaxAge) * time.Second)
}

// LoadState reads the state file; a missing file is an empty State.
func LoadState(path string) (*State, error) {
	s := &State{Domains: map[string]*DomainState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Domains == nil {
		s.Domains = map[string]*DomainState{}
	}
	return s, nil
}

// Save writes the state file atomically (a temporary file renamed).
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// Record notes that set is served from now on: a domain whose mode
// changed starts its mode now, a changed policy moves the previous one to
// Earlier, and earlier policies no sender can still cache are dropped.
// It reports whether anything changed.
func (s *State) Record(set *Set, now time.Time) bool {
	changed := false
	now = now.UTC().Truncate(time.Second)
	for _, d := range set.Domains {
		sv := d.Policy()
		cur := s.Domains[d.Name]
		if cur == nil {
			s.Domains[d.Name] = &DomainState{Mode: string(d.Mode), ModeSince: now, ID: sv.ID, MX: sv.Policy.MX, MaxAge: d.MaxAge, ServedSince: now}
			changed = true
			continue
		}
		if cur.ID != sv.ID {
			cur.Earlier = append(cur.Earlier, EarlierPolicy{ID: cur.ID, Mode: cur.Mode, MX: cur.MX, MaxAge: cur.MaxAge, ReplacedAt: now})
			if cur.Mode != string(d.Mode) {
				cur.Mode, cur.ModeSince = string(d.Mode), now
			}
			cur.ID, cur.MX, cur.MaxAge, cur.ServedSince = sv.ID, sv.Policy.MX, d.MaxAge, now
			changed = true
		}
		n := len(cur.Earlier)
		cur.Earlier = slices.DeleteFunc(cur.Earlier, func(e EarlierPolicy) bool { return !e.CachedUntil().After(now) })
		if len(cur.Earlier) > maxEarlier {
			cur.Earlier = cur.Earlier[len(cur.Earlier)-maxEarlier:]
		}
		changed = changed || len(cur.Earlier) != n
	}
	return changed
}

// cachedEnforce returns the enforce policies senders may hold for d at
// now other than d's configured one: the earlier ones still cached, and
// the one served now when the configuration changed it.
func (s *State) cachedEnforce(d *Domain, now time.Time) []EarlierPolicy {
	cur := s.Domains[d.Name]
	if cur == nil {
		return nil
	}
	var out []EarlierPolicy
	for _, e := range cur.Earlier {
		if e.Mode == string(mtasts.ModeEnforce) && e.CachedUntil().After(now) && e.ID != d.Policy().ID {
			out = append(out, e)
		}
	}
	if cur.ID != d.Policy().ID && cur.Mode == string(mtasts.ModeEnforce) {
		// Not replaced yet: senders may cache it for max_age from now.
		out = append(out, EarlierPolicy{ID: cur.ID, Mode: cur.Mode, MX: cur.MX, MaxAge: cur.MaxAge, ReplacedAt: now})
	}
	return out
}

// MXWarnings explains, for each domain of set, which MX hosts senders
// holding an earlier enforce policy in their cache would refuse, and until
// when: a live MX host the earlier policy does not match, or a pattern
// added since. It says how to move MX hosts safely.
func (s *State) MXWarnings(set *Set, now time.Time) []Problem {
	var out []Problem
	for _, d := range set.Domains {
		for _, e := range s.cachedEnforce(d, now) {
			old := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: e.MX}
			until := e.CachedUntil().UTC().Format(time.RFC3339)
			var refused []string
			for _, v := range old.CheckMX(d.LiveMX) {
				if !v.Allowed {
					refused = append(refused, v.Host)
				}
			}
			if len(refused) > 0 {
				out = append(out, Problem{Domain: d.Name, Msg: fmt.Sprintf(
					"live MX %s: senders holding the cached enforce policy id %s (mx %s) refuse it until %s; mail through it is deferred until then. Move MX safely: add the new host to the policy first, wait max_age, then change the MX records",
					strings.Join(refused, ", "), e.ID, strings.Join(e.MX, ", "), until)})
			}
			var added []string
			for _, p := range d.Policy().Policy.MX {
				if !slices.Contains(e.MX, p) {
					added = append(added, p)
				}
			}
			if len(added) > 0 {
				out = append(out, Problem{Domain: d.Name, Msg: fmt.Sprintf(
					"new mx %s: senders holding the cached enforce policy id %s refuse hosts matching only these until %s; point MX records at them only after that",
					strings.Join(added, ", "), e.ID, until)})
			}
		}
	}
	return out
}

// RetireUntil is when a domain switched to mode none now may stop being
// served: once every policy senders may cache has expired (RFC 8461 §8.3,
// STS-PUB-6), the one served now included.
func (s *State) RetireUntil(d *Domain, now time.Time) time.Time {
	until := now.Add(time.Duration(d.MaxAge) * time.Second)
	if cur := s.Domains[d.Name]; cur != nil {
		if t := now.Add(time.Duration(cur.MaxAge) * time.Second); t.After(until) {
			until = t
		}
		for _, e := range cur.Earlier {
			if t := e.CachedUntil(); t.After(until) {
				until = t
			}
		}
	}
	return until.UTC()
}
