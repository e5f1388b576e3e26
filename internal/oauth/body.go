package oauth

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/url"

	"github.com/tokengate/tokengate/internal/apierr"
)

// Seed 001 names the credentials clientId and clientSecret and sends no
// grant_type; RFC 6749 names them client_id and client_secret (or uses
// HTTP Basic) and requires grant_type. A Postman user sends the seed's
// names in whatever body form the tool offers: JSON, urlencoded or
// multipart/form-data. The token endpoint takes all three; a request
// that uses the seed's names is a seed request (grant_type defaults to
// client_credentials), any other keeps RFC 6749's rules.

// maxParts bounds the parts of a multipart body (besides maxBody).
const maxParts = 16

// formBody reads an urlencoded body into single-valued parameters.
func formBody(body []byte) (map[string]string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, apierr.BadRequest("malformed form body")
	}
	out := map[string]string{}
	for k, vs := range vals {
		if len(vs) > 1 {
			return nil, apierr.InputField(k, errors.New("parameter is repeated"))
		}
		out[k] = vs[0]
	}
	return out, nil
}

// multipartBody reads a multipart/form-data body (already bounded by
// maxBody): text fields only, each at most once.
func multipartBody(body []byte, boundary string) (map[string]string, error) {
	if boundary == "" {
		return nil, apierr.BadRequest("multipart/form-data body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	out := map[string]string{}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, apierr.BadRequest("malformed multipart/form-data body")
		}
		name := part.FormName()
		switch {
		case n == maxParts:
			return nil, apierr.BadRequest("multipart/form-data body has more than %d parts", maxParts)
		case name == "":
			return nil, apierr.BadRequest("multipart/form-data part without a field name")
		case part.FileName() != "":
			return nil, apierr.InputField(name, errors.New("must be a text field, not a file"))
		case hasKey(out, name):
			return nil, apierr.InputField(name, errors.New("parameter is repeated"))
		}
		v, err := io.ReadAll(part)
		if err != nil {
			return nil, apierr.BadRequest("malformed multipart/form-data body")
		}
		out[name] = string(v)
	}
}

// seedForm turns the seed's clientId/clientSecret into client_id and
// client_secret, with grant_type client_credentials unless given, for a
// request that uses the seed's names or a seed body (JSON). Mixing the
// two spellings is refused, naming both.
func seedForm(vals map[string]string, seedBody bool) (map[string]string, error) {
	if !seedBody && !hasKey(vals, "clientId") && !hasKey(vals, "clientSecret") {
		return vals, nil // an RFC 6749 request: grant_type stays required
	}
	for _, pair := range [][2]string{{"clientId", "client_id"}, {"clientSecret", "client_secret"}, {"clientId", "client_secret"}, {"clientSecret", "client_id"}} {
		if hasKey(vals, pair[0]) && hasKey(vals, pair[1]) {
			return nil, apierr.Field(pair[1], errors.New("send clientId and clientSecret, or client_id and client_secret, not both spellings"))
		}
	}
	out := map[string]string{}
	for k, v := range vals {
		switch k {
		case "clientId":
			k = "client_id"
		case "clientSecret":
			k = "client_secret"
		}
		out[k] = v
	}
	if !hasKey(out, "grant_type") {
		out["grant_type"] = "client_credentials"
	}
	return out, nil
}
