package audit

// TEMPORARY: the reader's signatures, so that the administrator's log page
// builds before the reader lands (another branch writes it). This file is
// deleted when that branch is merged.

// Filter selects records: Level is "", INFO, DEBUG or ERROR; Key matches a
// record's key name or client id ("" matches every record).
type Filter struct {
	Level string
	Key   string
}

// Days returns the days that have a log file (stub: none).
func (l *Log) Days() ([]string, error) { return nil, nil }

// Read returns up to limit records of day that match f, whether more
// matched than were returned, and how many malformed lines were skipped
// (stub: nothing).
func (l *Log) Read(day string, f Filter, limit int) (recs []Record, more bool, skipped int, err error) {
	return nil, false, 0, nil
}
