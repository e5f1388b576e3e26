// Package jsonbody reads JSON request bodies strictly: a size limit,
// application/json only, no unknown fields, no trailing data, and errors
// that name the offending field without echoing its value.
package jsonbody

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
)

// MaxBytes is the default body size limit.
const MaxBytes = 64 << 10

// Decode reads r's body into v. limit <= 0 means MaxBytes.
func Decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if limit <= 0 {
		limit = MaxBytes
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return apierr.ErrUnsupportedMedia
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apierr.ErrBodyTooLarge
		}
		return apierr.BadRequest("request body must hold a single JSON object")
	}
	return nil
}

// Explain turns an error of encoding/json's decoder into a client error
// (400, or 413 for a body past an http.MaxBytesReader) naming the member,
// as Decode does, for callers that decode a body of their own.
func Explain(err error) error { return explain(err) }

// explain turns a decoding error into a client error naming the field.
func explain(err error) error {
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	switch {
	case errors.As(err, &mbe):
		return apierr.ErrBodyTooLarge
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			return apierr.BadRequest("request body must be a JSON object")
		}
		return apierr.Field(field, fmt.Errorf("must be %s", describe(ute.Type.Kind().String())))
	case errors.As(err, &se):
		return apierr.BadRequest("malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF):
		return apierr.BadRequest("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apierr.BadRequest("malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apierr.InputField(name, errors.New("unknown field"))
	}
	return apierr.BadRequest("malformed JSON")
}

func describe(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "ptr", "struct", "map":
		return "an object"
	}
	return "of type " + kind
}

// Write sends v as JSON with the given status. Responses from our routes
// are not cached: some carry a secret shown only once.
func Write(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
