// Package edgesign mints v1 signed image URLs for edge (hs256 and ed25519), standard library only.
// What the edge would refuse (a bad path, exp, kid or key) is an error saying why.
package edgesign

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxExp is the largest exp a URL can carry: 12 digits.
const MaxExp = 999999999999

var (
	kidText  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	keyText  = regexp.MustCompile(`^[A-Za-z0-9_-]*={0,2}$`) // base64url, padding optional; unused bits ignored
	userText = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$`)
)

// Key is one signing entry of EDGE_SIGNING_KEYS.
type Key struct {
	Kid      string
	Alg      string // "hs256" or "ed25519"
	Material []byte // the hs256 secret, or the 32-byte ed25519 seed
}

// Options are SignURL's optional parts.
type Options struct {
	IncludeKid bool    // write kid= into the URL
	Transform  []Param // transform parameters, written in this order
	Align      int64   // round exp up to a multiple of this many seconds (0: exp as given)
}

// Param is one transform parameter as the URL shows it: {"w", "800"}; a preset is {"p:thumb", ""}.
type Param struct {
	Name, Value string
}

// transformValues accepts each transform parameter's canonical values, and nothing else.
var transformValues = map[string]func(string) bool{
	"w":         integer(1, 10000),
	"h":         integer(1, 10000),
	"fit":       oneOf("cover", "contain", "fill", "scale-down"),
	"aspect":    oneOf("original", "1:1", "4:3", "16:9", "3:2", "21:9"),
	"q":         integer(1, 100),
	"dpr":       oneOf("1", "1.5", "2", "3"),
	"crop":      oneOf("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right", "attention", "entropy"),
	"grayscale": oneOf("true", "false"),
	"blur":      integer(0, 100),
	"sharpen":   integer(0, 100),
	"rotate":    oneOf("0", "90", "180", "270", "auto"),
	"flip":      oneOf("h", "v", "both"),
}

var preset = regexp.MustCompile(`^p:[A-Za-z0-9_-]{1,64}$`)

func integer(low, high int) func(string) bool {
	return func(value string) bool {
		n, err := strconv.Atoi(value)
		return err == nil && value == strconv.Itoa(n) && low <= n && n <= high // no sign, no leading zero
	}
}

func oneOf(values ...string) func(string) bool {
	return func(value string) bool {
		for _, ok := range values {
			if value == ok {
				return true
			}
		}
		return false
	}
}

// unquote returns text without surrounding whitespace and one pair of matching quotes
// (' or "), as the edge reads a .env value.
func unquote(text string) string {
	text = strings.TrimSpace(text)
	if len(text) >= 2 && text[0] == text[len(text)-1] && (text[0] == '"' || text[0] == '\'') {
		text = strings.TrimSpace(text[1 : len(text)-1])
	}
	return text
}

// ParseKeyring reads "kid:alg:key,..." and returns the keys that can sign, in order; it refuses
// what the edge refuses. Whitespace and one pair of matching quotes around the whole value and
// around each entry are ignored, as the edge ignores them.
func ParseKeyring(text string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, entry := range strings.Split(unquote(text), ",") {
		entry = unquote(entry)
		if entry == "" {
			continue // a trailing comma
		}
		parts := strings.Split(entry, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d: expected kid:alg:key", i+1)
		}
		kid, alg, text := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
		if !kidText.MatchString(kid) {
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d: kid must be 1 to 32 characters of A-Z a-z 0-9 _ -", i+1)
		}
		if seen[kid] {
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d (kid %q): duplicate kid", i+1, kid)
		}
		seen[kid] = true
		data := strings.TrimRight(text, "=")
		raw, err := base64.RawURLEncoding.DecodeString(data)
		switch {
		case !keyText.MatchString(text) || len(data)%4 == 1 || err != nil:
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d (kid %q): key is not valid base64url (A-Z a-z 0-9 - _, padding optional)", i+1, kid)
		case alg == "hs256" && len(raw) >= 32, alg == "ed25519" && len(raw) == ed25519.SeedSize:
			keys = append(keys, Key{kid, alg, raw})
		case alg == "ed25519-pub" && len(raw) == ed25519.PublicKeySize: // verify-only: of no use to a signer
		default:
			return nil, fmt.Errorf("EDGE_SIGNING_KEYS: entry %d (kid %q): bad alg or key length", i+1, kid)
		}
	}
	return keys, nil
}

// CheckPath returns an error if the edge would refuse this decoded path; the messages are the edge's own.
func CheckPath(path string) error {
	refuse := errors.New // each message starts with "path"
	if !utf8.ValidString(path) {
		return refuse("path is not valid UTF-8")
	}
	if !strings.HasPrefix(path, "/i/") {
		return refuse("path does not start with /i/")
	}
	user, file, _ := strings.Cut(path[3:], "/")
	switch {
	case !userText.MatchString(user):
		return refuse("path: user must be 1 to 64 characters of A-Z a-z 0-9 _ . -, not starting with '.'")
	case file == "":
		return refuse("path names no file")
	case strings.IndexFunc(file, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) >= 0:
		return refuse("path holds a control byte or a backslash")
	case strings.Contains(file, "//") || strings.HasPrefix(file, "/") || strings.HasSuffix(file, "/"):
		return refuse("path has an empty segment ('//' or a trailing '/')")
	}
	segments := strings.Split(file, "/")
	for _, segment := range segments {
		if segment == "." || segment == ".." {
			return refuse("path has a '.' or '..' segment")
		}
	}
	if len(path) > 1024 {
		return refuse(fmt.Sprintf("path is %d bytes, the limit is 1024", len(path)))
	}
	for _, segment := range segments {
		if len(segment) > 255 {
			return refuse("path: a segment is longer than 255 bytes")
		}
	}
	return nil
}

// AlignExp rounds exp up to the next multiple of seconds (one already a multiple stays), so that
// URLs minted within one window are identical; seconds 0 leaves exp as given.
func AlignExp(exp, seconds int64) (int64, error) {
	if exp < 0 || exp > MaxExp {
		return 0, fmt.Errorf("exp: must be a whole number of seconds from 0 to %d, not %d", int64(MaxExp), exp)
	}
	if seconds < 0 {
		return 0, fmt.Errorf("align: must be a whole number of seconds, 0 or more, not %d", seconds)
	}
	if seconds == 0 || exp%seconds == 0 {
		return exp, nil
	}
	if up := seconds - exp%seconds; up <= MaxExp-exp {
		return exp + up, nil
	}
	return 0, fmt.Errorf("exp: aligned to %d s it is beyond %d (12 digits)", seconds, int64(MaxExp))
}

// QuotePath percent-encodes a decoded path, leaving only A-Z a-z 0-9 - . _ ~ and / literal.
func QuotePath(path string) string {
	var out strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			out.WriteByte(c)
		} else {
			fmt.Fprintf(&out, "%%%02X", c)
		}
	}
	return out.String()
}

// SignURL returns the path and query of a signed URL for a decoded path such as "/i/bob/café.png".
func SignURL(path string, key Key, exp int64, includeKid bool) (string, error) {
	return Sign(path, key, exp, Options{IncludeKid: includeKid})
}

// SignTransformURL is SignURL for a URL with transform parameters, written in the order given:
// SignTransformURL(path, key, exp, false, []Param{{"w", "800"}, {"fit", "cover"}}). Values must be
// canonical; a name outside the contract's table, a parameter given twice or a second preset is an error.
func SignTransformURL(path string, key Key, exp int64, includeKid bool, transform []Param) (string, error) {
	return Sign(path, key, exp, Options{IncludeKid: includeKid, Transform: transform})
}

// Sign is SignURL with every option: Sign(path, key, exp, Options{Align: 3600, Transform: ...}).
// A path, exp, kid (when written) or transform that the edge would refuse is an error.
func Sign(path string, key Key, exp int64, options Options) (string, error) {
	if err := CheckPath(path); err != nil {
		return "", err
	}
	exp, err := AlignExp(exp, options.Align)
	if err != nil {
		return "", err
	}
	includeKid, transform := options.IncludeKid, options.Transform
	if includeKid && !kidText.MatchString(key.Kid) {
		return "", errors.New("kid: must be 1 to 32 characters of A-Z a-z 0-9 _ -")
	}
	var query strings.Builder
	seen := map[string]bool{}
	presets := 0
	for _, param := range transform {
		valid, known := transformValues[param.Name]
		switch {
		case known && !valid(param.Value):
			return "", fmt.Errorf("transform: %s=%q is not a canonical value", param.Name, param.Value)
		case !known && (!preset.MatchString(param.Name) || param.Value != ""):
			return "", fmt.Errorf("transform: %q is not a transform parameter, nor a preset without value", param.Name)
		case seen[param.Name]:
			return "", fmt.Errorf("transform: %s is given twice", param.Name)
		}
		seen[param.Name] = true
		if !known {
			presets++
			if presets > 1 {
				return "", fmt.Errorf("transform: more than one preset")
			}
		}
		query.WriteString(transformText(param) + "&")
	}
	message := "v1\n" + path + "\n" + strconv.FormatInt(exp, 10)
	if len(transform) > 0 { // the parameters sorted by name, in byte order
		sorted := append([]Param(nil), transform...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
		texts := make([]string, len(sorted))
		for i, param := range sorted {
			texts[i] = transformText(param)
		}
		message += "\n" + strings.Join(texts, "&")
	}
	var sig []byte
	if key.Alg == "hs256" {
		mac := hmac.New(sha256.New, key.Material)
		mac.Write([]byte(message))
		sig = mac.Sum(nil)
	} else {
		sig = ed25519.Sign(ed25519.NewKeyFromSeed(key.Material), []byte(message))
	}
	url := QuotePath(path) + "?" + query.String() + "sig=" + base64.RawURLEncoding.EncodeToString(sig) + "&exp=" + strconv.FormatInt(exp, 10)
	if includeKid {
		url += "&kid=" + key.Kid
	}
	return url, nil
}

// transformText is a checked parameter as the URL and the signed string write it: "w=800", or "p:thumb".
func transformText(param Param) string {
	if strings.HasPrefix(param.Name, "p:") {
		return param.Name
	}
	return param.Name + "=" + param.Value
}
