package audit

import (
	"bufio"
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
// no more than maxReadBytes of one file are read.
const (
	defaultReadLimit = 1000
	maxLineBytes     = 64 << 10
	maxReadBytes     = 64 << 20
)

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
// "") is an empty day, not an error. A malformed line is skipped and counted
// (the count is returned) rather than failing the page; lines longer than 64
// KiB are skipped and counted too; blank lines are ignored. At most 64 MiB of
// the file are read: of a bigger file the last 64 MiB (the newest records),
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
	} else if fi.Size() > maxReadBytes {
		// Start one byte early: the read starts inside a line unless
		// that byte ends the line before.
		if _, err := file.Seek(fi.Size()-maxReadBytes-1, io.SeekStart); err != nil {
			return nil, false, 0, err
		}
		var before [1]byte
		if _, err := io.ReadFull(file, before[:]); err != nil {
			return nil, false, 0, err
		}
		partial, more = before[0] != '\n', true
	}
	// The file may grow while it is read: never more than the limit.
	r = io.LimitReader(r, maxReadBytes)

	// The newest matches are the last ones: keep the last limit of them in
	// a ring, count the rest.
	ring := make([]Record, 0, min(limit, 256))
	next, matched := 0, 0
	keep := func(rec Record) {
		matched++
		if len(ring) < limit {
			ring = append(ring, rec)
			return
		}
		ring[next] = rec
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
		} else if text := strings.TrimSpace(string(line)); text != "" {
			var rec Record
			if json.Unmarshal([]byte(text), &rec) != nil || rec.Timestamp.IsZero() {
				skipped++
			} else if f.matches(&rec) {
				keep(rec)
			}
		}
		if rerr == io.EOF {
			break
		}
	}

	recs = make([]Record, 0, len(ring))
	for i := range ring { // oldest kept first in the ring from next on
		recs = append(recs, ring[(next+i)%len(ring)])
	}
	slices.Reverse(recs)
	return recs, more || matched > limit, skipped, nil
}
