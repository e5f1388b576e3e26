// Package audit writes the token-operation log of seed 001: one JSON line
// per token request under <dir>/auth/oauth/<YYYY-MM-DD>, with timestamp,
// name (the OAuth key's name), hostname (the site requested), ip, level
// (INFO/DEBUG/ERROR), resp_code and, on errors, response. It never holds a
// secret or a token: callers pass only names, addresses and the error
// description sent to the client.
//
// Each line is written with one write(2) on a file opened with O_APPEND, so
// lines from concurrent requests, and from several processes sharing the
// directory, never interleave. The same records can also go to a zap
// logger for users who ship logs elsewhere.
package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
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
	Name      string    `json:"name"`
	Hostname  string    `json:"hostname"`
	IP        string    `json:"ip"`
	Level     string    `json:"level"`
	RespCode  int       `json:"resp_code"`
	Response  string    `json:"response,omitempty"`
}

// Log writes records. A nil *Log discards them.
type Log struct {
	dir    string
	logger *zap.Logger
	now    func() time.Time

	mu   sync.Mutex
	day  string
	file *os.File
}

// New returns a Log writing under dir ("" for no files) and to logger (nil
// for none). now nil means time.Now.
func New(dir string, logger *zap.Logger, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{dir: dir, logger: logger, now: now}
}

// Path returns the file for the day of t.
func (l *Log) Path(t time.Time) string {
	return filepath.Join(l.dir, "auth", "oauth", t.UTC().Format("2006-01-02"))
}

// Write records r (setting its timestamp). Errors writing the file are
// returned; the zap copy is written regardless.
func (l *Log) Write(r Record) error {
	if l == nil {
		return nil
	}
	r.Timestamp = l.now().UTC()
	if l.logger != nil {
		l.logger.Info("token request", zap.String("name", r.Name), zap.String("hostname", r.Hostname),
			zap.String("ip", r.IP), zap.String("level", r.Level), zap.Int("resp_code", r.RespCode),
			zap.String("response", r.Response))
	}
	if l.dir == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.fileFor(r.Timestamp)
	if err != nil {
		return err
	}
	_, err = f.Write(line)
	return err
}

// fileFor opens (or keeps) the file of t's day. Called with mu held.
func (l *Log) fileFor(t time.Time) (*os.File, error) {
	day := t.Format("2006-01-02")
	if l.file != nil && l.day == day {
		return l.file, nil
	}
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
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
