package policyd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsts/mailsts/internal/atomicfile"
	"github.com/mailsts/mailsts/internal/stscache"
)

// StatusFileName is the file under the state directory where a running
// policyd records which cache store it uses (a fall back to memory lives
// in its own process, out of sight of `mailsts cache status` otherwise).
const StatusFileName = "policyd-status.json"

// StoreStatus is what policyd records in its status file.
type StoreStatus struct {
	// PID and Started identify the daemon that wrote it.
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Updated is when it was last written.
	Updated time.Time `json:"updated"`
	// Kind is the store in use: "sqlite", "redis" or "memory".
	Kind string `json:"kind"`
	// Where is the file path, the Redis address, or "memory …".
	Where string `json:"where"`
	// Durable is true when the cache survives a restart.
	Durable bool `json:"durable"`
	// Degraded is why the configured SQLite file could not be opened, when
	// policyd fell back to memory.
	Degraded string `json:"degraded,omitempty"`
	// Repair describes the damaged file set aside and rebuilt at start.
	Repair *RepairStatus `json:"repair,omitempty"`
	// Damaged is true when a read or write hit a damaged page of the file
	// since start (the file is set aside and rebuilt at the next start).
	Damaged bool `json:"damaged,omitempty"`
	// BackFailing is true while the back store (SQLite or Redis) fails
	// and policyd answers from memory and fresh lookups, since
	// BackFailingSince, with the last error; Pending entries wait in
	// memory to be written back.
	BackFailing      bool      `json:"back_failing,omitempty"`
	BackFailingSince time.Time `json:"back_failing_since,omitzero"`
	BackError        string    `json:"back_error,omitempty"`
	Pending          int       `json:"pending_writes,omitempty"`
	// ResolverValidates says whether the resolver validates DNSSEC
	// (ValidatesYes, ValidatesNo, ValidatesUnknown; Responder.
	// ResolverValidates); empty before policyd has asked.
	ResolverValidates string `json:"resolver_validates_dnssec,omitempty"`
}

// RepairStatus is a repair of a damaged SQLite cache file.
type RepairStatus struct {
	SetAside string    `json:"set_aside"`
	At       time.Time `json:"at"`
	Damage   string    `json:"damage"`
	Salvaged int       `json:"salvaged"`
	Lost     int       `json:"unreadable"`
}

// StatusPath returns the path of policyd's status file for cfg.
func StatusPath(cfg *Config, getenv func(string) string) string {
	dir := cfg.StateDir
	if dir == "" {
		dir = DefaultStateDir(getenv)
	}
	return filepath.Join(dir, StatusFileName)
}

// NewStoreStatus returns the status file record of a cache in state cs,
// for a daemon that started at started.
func NewStoreStatus(cs stscache.Status, started, now time.Time) StoreStatus {
	st := StoreStatus{PID: os.Getpid(), Started: started.UTC(), Updated: now.UTC(), Kind: cs.Kind, Where: cs.Where, Durable: cs.Durable, Damaged: cs.Damaged}
	if cs.FellBack != nil {
		st.Degraded = cs.FellBack.Error()
	}
	if r := cs.Repair; r != nil {
		st.Repair = &RepairStatus{SetAside: r.SetAside, At: r.At, Damage: r.Damage.Error(), Salvaged: r.Salvaged, Lost: r.Lost}
	}
	if b := cs.Back; b.Degraded {
		st.BackFailing, st.BackFailingSince, st.Pending = true, b.Since.UTC(), b.Pending
		if b.Err != nil {
			st.BackError = b.Err.Error()
		}
	}
	return st
}

// WriteStatus writes st to path: a new file renamed into place, readable
// by everyone who can read the directory (it holds no secrets).
func WriteStatus(path string, st StoreStatus) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("policyd: status file: %w", err)
	}
	return nil
}

// ReadStatus reads a status file written by WriteStatus.
func ReadStatus(path string) (*StoreStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st StoreStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("policyd: %s: %w", path, err)
	}
	return &st, nil
}
