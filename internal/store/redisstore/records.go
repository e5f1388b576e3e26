package redisstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// encodeToken returns the stored form of t: JSON without the last use,
// which lives in a hash of its own so that RecordLastUse can compare and
// set it in a Lua script without decoding and re-encoding JSON there.
func encodeToken(t store.Token) (string, error) {
	t.LastUsedAt, t.LastUsedIP = time.Time{}, ""
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode token %s/%s: %w", t.Owner, t.ID, err)
	}
	return string(b), nil
}

// decodeToken reads a stored token and its last use ("" if never used).
func decodeToken(data, used string) (store.Token, error) {
	var t store.Token
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return store.Token{}, fmt.Errorf("redisstore: decode token: %w", err)
	}
	if used != "" {
		var err error
		if t.LastUsedAt, t.LastUsedIP, err = parseLastUse(used); err != nil {
			return store.Token{}, fmt.Errorf("redisstore: decode last use of token %s/%s: %w", t.Owner, t.ID, err)
		}
	}
	return t, nil
}

// encodeUser returns the stored form of u.
func encodeUser(u store.User) (string, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode user %q: %w", u.Name, err)
	}
	return string(b), nil
}

// decodeUser reads a stored user.
func decodeUser(data string) (store.User, error) {
	var u store.User
	if err := json.Unmarshal([]byte(data), &u); err != nil {
		return store.User{}, fmt.Errorf("redisstore: decode user: %w", err)
	}
	return u, nil
}

// stampLayout formats last-use times in UTC with a fixed width, so that
// comparing two stamps as strings (in Lua) compares the times.
const stampLayout = "2006-01-02T15:04:05.000000000Z"

// stamp formats t for comparison; see stampLayout.
func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// lastUse is the stored form of a last use: "STAMP IP".
func lastUse(at time.Time, ip string) string { return stamp(at) + " " + ip }

// parseLastUse reads a value written by lastUse.
func parseLastUse(v string) (time.Time, string, error) {
	s, ip, _ := strings.Cut(v, " ")
	at, err := time.Parse(stampLayout, s)
	return at, ip, err
}
