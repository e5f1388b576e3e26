package jwt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// JOSE headers and JWT claims are JSON objects whose member names are
// case-sensitive and unique (RFC 7515 4, RFC 7519 4). encoding/json is
// neither: it maps "ALG" onto a field tagged "alg" and lets the last of two
// "exp" members win, so a token could mean one thing to us and another to
// a library that reads the first member, or folds case differently. The
// decoder here reads the top-level object once, refuses duplicate names
// (after unescaping, so "\u0061lg" is "alg") and matches names exactly;
// nested values are handed to encoding/json as they are.

// ErrDuplicate is a JOSE header or claims set naming a member twice.
var ErrDuplicate = fmt.Errorf("%w: duplicate member", ErrMalformed)

// member is one name/value pair of a JSON object: the name unescaped,
// the value raw JSON. Both usually share the object's bytes.
type member struct {
	name  []byte
	value []byte
}

// members returns the members of the JSON object b in order. b must be
// valid UTF-8 JSON and an object; names must be unique. expect is how
// many members to make room for.
func members(b []byte, expect int) ([]member, error) {
	if !utf8.Valid(b) || !json.Valid(b) {
		return nil, ErrMalformed
	}
	// b is valid JSON from here on: the walk below only has to find where
	// each name and value ends, not to check the grammar.
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, ErrMalformed
	}
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return nil, nil
	}
	ms := make([]member, 0, expect)
	var seen map[string]struct{} // only for objects with many members
	for {
		end := stringEnd(b, i)
		name, err := unquote(b[i:end])
		if err != nil {
			return nil, ErrMalformed
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the colon
		vend := valueEnd(b, i)
		if dup(ms, &seen, name) {
			return nil, ErrDuplicate
		}
		ms = append(ms, member{name: name, value: b[i:vend]})
		i = skipSpace(b, vend)
		if b[i] == '}' {
			return ms, nil
		}
		i = skipSpace(b, i+1) // the comma
	}
}

// dup reports whether name is already among ms, and records it. A short
// object is searched in place; a long one gets a set, so that a payload of
// thousands of members costs linear time.
func dup(ms []member, seen *map[string]struct{}, name []byte) bool {
	const few = 16
	if len(ms) < few {
		for _, m := range ms {
			if bytes.Equal(m.name, name) {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(ms))
		for _, m := range ms {
			(*seen)[string(m.name)] = struct{}{}
		}
	}
	if _, ok := (*seen)[string(name)]; ok {
		return true
	}
	(*seen)[string(name)] = struct{}{}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index just past the string that starts (with its
// quote) at i.
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd is the index just past the value that starts at i.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}

// unquote decodes a JSON string literal; without escapes it is a slice
// of q, no copy.
func unquote(q []byte) ([]byte, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1], nil
	}
	var s string
	err := json.Unmarshal(q, &s)
	return []byte(s), err
}

// decodeObject decodes the members of a JSON object into v: a pointer to a
// struct, whose exported fields take the member named exactly as their
// json tag (or, untagged, their field name); or a pointer to a
// map[string]any, whose numbers become json.Number so that exp and other
// integers keep their precision. Members with no field are ignored.
func decodeObject(ms []member, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("jwt: decoding needs a non-nil pointer")
	}
	rv = rv.Elem()
	if m, ok := v.(*map[string]any); ok {
		if *m == nil {
			*m = make(map[string]any, len(ms))
		}
		for _, mem := range ms {
			dec := json.NewDecoder(bytes.NewReader(mem.value))
			dec.UseNumber()
			var x any
			if err := dec.Decode(&x); err != nil {
				return fmt.Errorf("%w: member %q: %v", ErrMalformed, mem.name, err)
			}
			(*m)[string(mem.name)] = x
		}
		return nil
	}
	if rv.Kind() != reflect.Struct {
		return fmt.Errorf("jwt: cannot decode an object into %T", v)
	}
	fields := fieldsOf(rv.Type())
	for _, mem := range ms {
		idx, ok := fields[string(mem.name)]
		if !ok {
			continue
		}
		f := rv.Field(idx)
		if fastDecode(mem.value, f) {
			continue
		}
		if err := json.Unmarshal(mem.value, f.Addr().Interface()); err != nil {
			return fmt.Errorf("%w: member %q: %v", ErrMalformed, mem.name, err)
		}
	}
	return nil
}

// fastDecode sets a plain string or int64 field from a value that needs
// no unescaping or conversion, which is most of a token's claims, and
// reports whether it did; anything else is left to encoding/json.
func fastDecode(v []byte, f reflect.Value) bool {
	switch f.Kind() {
	case reflect.String:
		if f.Type() != reflect.TypeFor[string]() || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
			return false
		}
		f.SetString(string(v[1 : len(v)-1]))
		return true
	case reflect.Int64:
		if f.Type() != reflect.TypeFor[int64]() {
			return false
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return false // a float, an exponent, too big: encoding/json says
		}
		f.SetInt(n)
		return true
	}
	return false
}

// fieldCache maps a struct type to its member names and field indexes.
var fieldCache sync.Map // reflect.Type -> map[string]int

// fieldsOf maps exact member names to the exported fields of struct type
// t, by their json tag ("-" leaves a field out). Embedded structs are not
// flattened: they are named like any other field.
func fieldsOf(t reflect.Type) map[string]int {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]int)
	}
	f := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = sf.Name
		}
		f[name] = i
	}
	fieldCache.Store(t, f)
	return f
}
