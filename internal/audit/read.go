package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Reading limits: a page shows at most defaultReadLimit records of a day,
// a line longer than maxLineBytes is not a record this package wrote, and
// no more than MaxReadBytes of one file are read.
const (
	defaultReadLimit = 1000
	maxLineBytes     = 64 << 10
)

// MaxReadBytes is the most of one day's file Read reads: the newest
// ~80000 records, so that a page view stays quick on a busy day.
const MaxReadBytes = 16 << 20

// Days lists the days that have a log file, newest first ("YYYY-MM-DD"); none
// when Dir is "" or nothing was written yet. Files whose names are not days
// are ignored.
func (l *Log) Days() ([]string, error) {
	if l == nil || l.dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(filepath.Join(l.dir, "auth", "oauth"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var days []string
	for _, e := range entries {
		if e.Type().IsRegular() && validDay(e.Name()) {
			days = append(days, e.Name())
		}
	}
	slices.Sort(days)
	slices.Reverse(days)
	return days, nil
}

// validDay tells whether day is a real date written YYYY-MM-DD, so that no
// path can be built from anything else.
func validDay(day string) bool {
	if len(day) != len("2006-01-02") {
		return false
	}
	for i, c := range []byte(day) {
		if i == 4 || i == 7 {
			if c != '-' {
				return false
			}
		} else if c < '0' || c > '9' {
			return false
		}
	}
	_, err := time.Parse("2006-01-02", day) // rejects 2026-02-30 and 2026-13-01
	return err == nil
}

// Filter selects records: empty fields match everything.
type Filter struct {
	Level string // INFO, DEBUG or ERROR (any case)
	Key   string // matches Name or ClientID exactly
}

// matches tells whether r passes f.
func (f Filter) matches(r *Record) bool {
	if f.Level != "" && !strings.EqualFold(f.Level, r.Level) {
		return false
	}
	return f.Key == "" || f.Key == r.Name || f.Key == r.ClientID
}

// Read returns the records of day (YYYY-MM-DD, validated strictly so no path
// can be built from it: anything else is an error) that match f, newest first
// (the reverse of the file's order, which is the order of writing), at most
// limit (limit <= 0: 1000), and whether more matched. A missing file (or Dir
// "") is an empty day, not an error. Lines longer than 64 KiB are skipped and
// counted (the count is returned) rather than failing the page, and so are
// malformed lines among those examined: only the newest limit lines that
// hold the filter's level and key as the writer encodes them are decoded
// (so the level filter matches the upper-case levels this package writes).
// Blank lines are ignored. At most MaxReadBytes of
// the file are read: of a bigger file the last MaxReadBytes (the newest records),
// and more is true.
func (l *Log) Read(day string, f Filter, limit int) (recs []Record, more bool, skipped int, err error) {
	if !validDay(day) {
		return nil, false, 0, fmt.Errorf("audit: day %q is not a date written YYYY-MM-DD", day)
	}
	if limit <= 0 {
		limit = defaultReadLimit
	}
	if l == nil || l.dir == "" {
		return nil, false, 0, nil
	}
	file, err := os.Open(filepath.Join(l.dir, "auth", "oauth", day))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, 0, nil
	}
	if err != nil {
		return nil, false, 0, err
	}
	defer file.Close()

	var r io.Reader = file
	partial := false // the read starts inside a line: drop up to its end
	if fi, err := file.Stat(); err != nil {
		return nil, false, 0, err
	} else if fi.Size() > MaxReadBytes {
		// Start one byte early: the read starts inside a line unless
		// that byte ends the line before.
		if _, err := file.Seek(fi.Size()-MaxReadBytes-1, io.SeekStart); err != nil {
			return nil, false, 0, err
		}
		var before [1]byte
		if _, err := io.ReadFull(file, before[:]); err != nil {
			return nil, false, 0, err
		}
		partial, more = before[0] != '\n', true
	}
	// The file may grow while it is read: never more than the limit.
	r = io.LimitReader(r, MaxReadBytes)

	// The newest matches are the last ones: keep the raw lines of the last
	// limit candidates in a ring and decode only those at the end, so that
	// a big day costs a scan, not a JSON decode per line. A line is a
	// candidate when it holds the filter's level and key as the writer
	// encodes them (a cheap test; the decoded record is checked again).
	pre := f.prefilter()
	ring := make([][]byte, 0, min(limit, 256))
	next, candidates := 0, 0
	keep := func(line []byte) {
		candidates++
		if len(ring) < limit {
			ring = append(ring, append([]byte(nil), line...))
			return
		}
		ring[next] = append(ring[next][:0], line...)
		next = (next + 1) % limit
	}

	br := bufio.NewReaderSize(r, maxLineBytes+1)
	for {
		line, rerr := br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull { // longer than maxLineBytes
			for rerr == bufio.ErrBufferFull {
				_, rerr = br.ReadSlice('\n')
			}
			if !partial {
				skipped++
			}
			partial = false
			if rerr != nil && rerr != io.EOF {
				return nil, false, 0, rerr
			}
			if rerr == io.EOF {
				break
			}
			continue
		}
		if rerr != nil && rerr != io.EOF {
			return nil, false, 0, rerr
		}
		if partial {
			partial = false
		} else if text := bytes.TrimSpace(line); len(text) > 0 && pre.may(text) {
			keep(text)
		}
		if rerr == io.EOF {
			break
		}
	}

	recs = make([]Record, 0, len(ring))
	for i := len(ring) - 1; i >= 0; i-- { // newest first
		var rec Record
		if json.Unmarshal(ring[(next+i)%len(ring)], &rec) != nil || rec.Timestamp.IsZero() {
			skipped++
		} else if f.matches(&rec) {
			recs = append(recs, rec)
		}
	}
	return recs, more || candidates > limit, skipped, nil
}

// prefilter is a Filter as bytes the writer puts in a matching line.
type prefilter struct{ level, key []byte }

func (f Filter) prefilter() prefilter {
	var p prefilter
	if f.Level != "" {
		p.level = []byte(`"level":"` + strings.ToUpper(f.Level) + `"`)
	}
	if f.Key != "" {
		// A string always encodes; the writer encodes names the same way.
		if b, err := json.Marshal(f.Key); err == nil {
			p.key = b
		}
	}
	return p
}

// may reports whether line can hold a matching record.
func (p prefilter) may(line []byte) bool {
	return (p.level == nil || bytes.Contains(line, p.level)) && (p.key == nil || bytes.Contains(line, p.key))
}
