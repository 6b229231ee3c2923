package sqlitedb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Owner is a file owner: numeric user and group ids.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// chownTarget decides whose files a process creates in a directory: when
// it runs as root (euid 0) in a directory owned by another user, that
// user's (a daemon running as that user must be able to write them);
// otherwise nobody's (ok false: leave the files as created).
func chownTarget(euid int, dir Owner) (Owner, bool) {
	if euid != 0 || dir.UID == 0 {
		return Owner{}, false
	}
	return dir, true
}

// ChownLikeDir gives the SQLite file at path and its -wal and -shm files
// (those that exist) to the owner of their directory, when this process
// runs as root and the directory belongs to another user: `mailsts cache`
// run as root must not leave files that lock out a policyd running as
// that user (SQLite itself gives -wal and -shm files created later by
// root the database file's owner). Otherwise it does nothing.
func ChownLikeDir(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlitedb: %s: %w", path, err)
	}
	dir, ok, err := ownerOf(filepath.Dir(abs))
	if err != nil || !ok {
		return err
	}
	to, ok := chownTarget(os.Geteuid(), dir)
	if !ok {
		return nil
	}
	var errs []error
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		if err := os.Lchown(p, to.UID, to.GID); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitedb: give %s to the owner of its directory (uid %d): %w", abs, to.UID, err)
	}
	return nil
}
