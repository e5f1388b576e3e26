// Package audit writes the token-operation log of seed 001: one JSON line
// per token request under <dir>/auth/oauth/<YYYY-MM-DD>, with timestamp,
// name (the OAuth key's name), hostname (the site requested), ip, level
// (INFO/DEBUG/ERROR), resp_code and, on errors, response. It never holds a
// secret or a token: callers pass only names, addresses and the error
// description sent to the client.
//
// Each line is written with one write(2) on a file opened with O_APPEND, so
// lines from concurrent requests, and from several processes sharing the
// directory, never interleave. Days begin in a configured time zone. The
// same records can also go to a zap
// logger for users who ship logs elsewhere. Days and Read (read.go) read
// the files back, for the admin pages.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// Levels.
const (
	LevelInfo  = "INFO"
	LevelDebug = "DEBUG"
	LevelError = "ERROR"
)

// Record is one audit line.
type Record struct {
	Timestamp time.Time `json:"timestamp"`
	// Name is the OAuth key's name ("" when no key has the id sent).
	Name string `json:"name"`
	// ClientID is the client id sent, when it has a client id's shape.
	ClientID string `json:"client_id,omitempty"`
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
	Level    string `json:"level"`
	RespCode int    `json:"resp_code"`
	Response string `json:"response,omitempty"`
	// Event is set on records that are not token requests: the lifecycle
	// event's type (token.reported_leaked: Name is then the token's owner,
	// or the OAuth key's name, and Response says what was done).
	Event string `json:"event,omitempty"`
	// HashedToken is the SHA-256 of the token concerned, lowercase hex
	// (never the token), on records with an Event.
	HashedToken string `json:"hashed_token,omitempty"`
}

// Log writes records. A nil *Log discards them.
type Log struct {
	dir     string
	records *zap.Logger
	errors  *zap.Logger
	now     func() time.Time
	loc     *time.Location

	failures atomic.Uint64

	mu      sync.Mutex
	day     string
	file    *os.File
	failing bool // the last write failed (and that was logged)
}

// Options configure a Log. The zero value writes nothing.
type Options struct {
	// Dir is the log's directory ("" for no files). It is made, with its
	// auth/oauth subdirectories, by the first write.
	Dir string
	// Records gets a copy of every record (nil: none).
	Records *zap.Logger
	// Errors is told when writing the files fails, once per streak of
	// failures, and once when a write succeeds again (nil: nobody).
	Errors *zap.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Location is the time zone in which days begin, and in which
	// timestamps are written (nil: time.Local).
	Location *time.Location
}

// New returns a Log with opts. It touches no file.
func New(opts Options) *Log {
	l := &Log{dir: opts.Dir, records: opts.Records, errors: opts.Errors, now: opts.Now, loc: opts.Location}
	if l.now == nil {
		l.now = time.Now
	}
	if l.loc == nil {
		l.loc = time.Local
	}
	if l.errors == nil {
		l.errors = zap.NewNop()
	}
	return l
}

// LoadLocation returns the time zone named name: an IANA name, "UTC", or
// "Local" or "" for the server's zone.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.Local, nil
	}
	return time.LoadLocation(name)
}

// Path returns the file for the day of t in the log's time zone.
func (l *Log) Path(t time.Time) string {
	return filepath.Join(l.dir, "auth", "oauth", t.In(l.loc).Format("2006-01-02"))
}

// Failures returns how many records could not be written to the files.
func (l *Log) Failures() uint64 {
	if l == nil {
		return 0
	}
	return l.failures.Load()
}

// Write records r (setting its timestamp). A record that cannot be written
// to the file is counted (Failures) and reported to the error logger, once
// per streak of failures; the zap copy is written regardless. A caller
// never waits on the log's health: the request it records is answered
// either way.
func (l *Log) Write(r Record) {
	if l == nil {
		return
	}
	r.Timestamp = l.now().In(l.loc)
	r.Hostname = store.CleanHost(r.Hostname) // the client's Host: one bounded printable word
	if l.records != nil {
		// "audit_level", not "level": the entry has its own level member.
		l.records.Info("token request", zap.String("name", r.Name), zap.String("hostname", r.Hostname),
			zap.String("ip", r.IP), zap.String("audit_level", r.Level), zap.Int("resp_code", r.RespCode),
			zap.String("response", r.Response))
	}
	if l.dir == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report(l.writeLine(r))
}

// writeLine appends r to its day's file. Called with mu held.
func (l *Log) writeLine(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := l.fileFor(r.Timestamp)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		l.closeFile() // reopen on the next write: the file may be gone
		return err
	}
	return nil
}

// report counts a failed write and logs the first of a streak, or logs
// that writing works again. Called with mu held.
func (l *Log) report(err error) {
	switch {
	case err != nil:
		l.failures.Add(1)
		if !l.failing {
			l.failing = true
			l.errors.Error("writing the audit log failed; records are lost until it works again (counted, not logged again)",
				zap.String("dir", l.dir), zap.Error(err))
		}
	case l.failing:
		l.failing = false
		l.errors.Info("writing the audit log works again", zap.String("dir", l.dir), zap.Uint64("failures_so_far", l.failures.Load()))
	}
}

// fileFor opens (or keeps) the file of t's day. Called with mu held.
func (l *Log) fileFor(t time.Time) (*os.File, error) {
	day := t.In(l.loc).Format("2006-01-02")
	if l.file != nil && l.day == day {
		return l.file, nil
	}
	l.closeFile()
	path := l.Path(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	l.file, l.day = f, day
	return f, nil
}

// closeFile closes the open file, if any; a close error is logged (the
// lines were written with write(2), so no buffered data is lost). Called
// with mu held.
func (l *Log) closeFile() {
	if l.file == nil {
		return
	}
	if err := l.file.Close(); err != nil {
		l.errors.Warn("closing an audit log file", zap.String("file", l.file.Name()), zap.Error(err))
	}
	l.file = nil
}

// Close closes the open file.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// CheckDir tells whether a Log could write under dir, without creating
// anything: the deepest existing directory on the way to dir/auth/oauth
// must be a directory the process may write to (and nothing on the way may
// be a file). "" (no files) is fine.
func CheckDir(dir string) error {
	if dir == "" {
		return nil
	}
	p := filepath.Join(dir, "auth", "oauth")
	for {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%s is not a directory, so %s cannot be made", p, dir)
		case err == nil:
			if err := writable(p); err != nil {
				return fmt.Errorf("%s is not writable: %w", p, err)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("no directory on the way to %s exists", dir)
		}
		p = parent
	}
}
