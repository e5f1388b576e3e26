package audit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/audit"
)

// A directory that cannot be written is reported once per streak of
// failures, counted every time, and reported again when it works.
func TestWriteFailureLoggedOncePerStreak(t *testing.T) {
	dir := t.TempDir()
	// A file where the log wants a directory: fails even for root.
	if err := os.WriteFile(filepath.Join(dir, "auth"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	core, errs := observer.New(zapcore.InfoLevel)
	l := audit.New(audit.Options{Dir: dir, Errors: zap.New(core), Now: (&clock{t: t0}).Now, Location: time.UTC})
	defer l.Close()
	rec := audit.Record{Name: "ci", Level: audit.LevelInfo, RespCode: 200}
	for range 3 {
		l.Write(rec)
	}
	if got := l.Failures(); got != 3 {
		t.Errorf("Failures() = %d after 3 failed writes, want 3", got)
	}
	if n := errs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Fatalf("%d error lines for one streak of failures, want 1", n)
	}
	if err := os.Remove(filepath.Join(dir, "auth")); err != nil {
		t.Fatal(err)
	}
	l.Write(rec)
	l.Write(rec)
	if got := l.Failures(); got != 3 {
		t.Errorf("Failures() = %d after the log recovered, want 3", got)
	}
	if n := errs.FilterLevelExact(zapcore.InfoLevel).Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	if got := lines(t, dayFile(dir, "2025-06-01")); len(got) != 2 {
		t.Errorf("%d lines after recovery, want 2", len(got))
	}
	if err := os.Rename(filepath.Join(dir, "auth"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.Write(rec) // the open file still works: not a failure
	if n := errs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d error lines, want 1", n)
	}
}

// duplicateMembers returns the member names that occur more than once in
// the JSON object b.
func duplicateMembers(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", b)
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		name := tok.(string)
		if seen[name] {
			dups = append(dups, name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return dups
}

// The zap copy of a record, encoded as JSON the way Caddy logs it, has one
// "level" member (the entry's), not the record's level a second time.
func TestZapCopyHasOneLevel(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	logger := zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Writer(&buf)), zapcore.DebugLevel))
	l := audit.New(audit.Options{Records: logger})
	l.Write(audit.Record{Name: "ci", Level: audit.LevelError, RespCode: 401, Response: "invalid_client: x"})
	line := bytes.TrimSpace(buf.Bytes())
	if dups := duplicateMembers(t, line); len(dups) != 0 {
		t.Errorf("members %v written twice in %s", dups, line)
	}
	if !strings.Contains(string(line), `"audit_level":"ERROR"`) {
		t.Errorf("the record's level is missing: %s", line)
	}
}

// Days begin at midnight in the configured zone, not in UTC.
func TestDayRollsOverInConfiguredZone(t *testing.T) {
	zone, err := audit.LoadLocation("Asia/Tokyo") // UTC+9, no DST
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// 14:59 UTC is 23:59 in Tokyo; a minute later it is the next day there
	// but still the same day in UTC.
	clk := &clock{t: time.Date(2025, 6, 1, 14, 59, 0, 0, time.UTC)}
	l := audit.New(audit.Options{Dir: dir, Now: clk.Now, Location: zone})
	defer l.Close()
	write(t, l, audit.Record{Name: "before midnight"})
	clk.Advance(2 * time.Minute)
	write(t, l, audit.Record{Name: "after midnight"})
	for day, name := range map[string]string{"2025-06-01": "before midnight", "2025-06-02": "after midnight"} {
		got := lines(t, dayFile(dir, day))
		if len(got) != 1 || got[0]["name"] != name {
			t.Errorf("file %s holds %v, want %q", day, got, name)
		}
		if ts, _ := got[0]["timestamp"].(string); !strings.HasSuffix(ts, "+09:00") {
			t.Errorf("timestamp %q is not in the configured zone", ts)
		}
	}
}

func TestLoadLocation(t *testing.T) {
	for _, name := range []string{"", "Local", "UTC", "Europe/Kyiv"} {
		if _, err := audit.LoadLocation(name); err != nil {
			t.Errorf("LoadLocation(%q): %v", name, err)
		}
	}
	if _, err := audit.LoadLocation("Mars/Olympus"); err == nil {
		t.Error("an unknown zone was accepted")
	}
}

// CheckDir says whether the log could be written, and creates nothing.
func TestCheckDirCreatesNothing(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir string
		ok  bool
	}{
		{"", true},
		{root, true},
		{filepath.Join(root, "a", "b", "c"), true},
		{file, false},
		{filepath.Join(file, "below"), false},
	}
	for _, c := range cases {
		if err := audit.CheckDir(c.dir); (err == nil) != c.ok {
			t.Errorf("CheckDir(%q) = %v, want ok=%v", c.dir, err, c.ok)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 1 {
		t.Errorf("CheckDir created something: %v %v", entries, err)
	}
}
