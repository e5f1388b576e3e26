package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/audit"
)

// logLimit is the most records the log page shows at once.
const logLimit = 500

// logLevels are the levels one can filter by (seed 001).
var logLevels = []string{audit.LevelInfo, audit.LevelDebug, audit.LevelError}

// logData is the OAuth token request log (seed 001).
type logData struct {
	// Days have a log, newest first; Day is the one shown.
	Days []string
	Day  string
	// Level and Key are the filter ("" for any).
	Level, Key string
	Levels     []string
	Records    []audit.Record
	// More: more records matched than are shown.
	More bool
	// Skipped is how many malformed lines were left out.
	Skipped int
	Limit   int
	// Missing is a day asked for that has no log (the newest is shown).
	Missing string
}

func (u *UI) logPage(req *request) error {
	q := req.r.URL.Query()
	d := logData{Levels: logLevels, Limit: logLimit, Key: strings.TrimSpace(q.Get("key"))}
	if lvl := strings.ToUpper(q.Get("level")); slices.Contains(logLevels, lvl) {
		d.Level = lvl
	}
	if u.opts.Audit != nil {
		days, err := u.opts.Audit.Days()
		if err != nil {
			return err
		}
		d.Days = slices.Clone(days)
		slices.Sort(d.Days)
		slices.Reverse(d.Days)
	}
	d.Day = q.Get("day")
	if !slices.Contains(d.Days, d.Day) {
		if d.Day != "" {
			d.Missing = d.Day
		}
		d.Day = ""
		if len(d.Days) > 0 {
			d.Day = d.Days[0]
		}
	}
	if d.Day != "" {
		var err error
		d.Records, d.More, d.Skipped, err = u.opts.Audit.Read(d.Day, audit.Filter{Level: d.Level, Key: d.Key}, logLimit)
		if err != nil {
			return err
		}
	}
	return u.render(req, http.StatusOK, "admin_log", u.newView(req, "admin.log.title", "log", d))
}
