package ledger

import (
	"fmt"
	"regexp"
	"strings"
)

// Currency symbols are case-insensitive: HRS, Hrs and hrs name one
// currency. Entries and gossip topics carry one canonical form, lowercase
// ASCII, so that every node computes the same CurrencyIDs, topics and CIDs
// (and the entries and topics written before symbols were folded, all
// lowercase, stay valid unchanged). How the issuer wrote the symbol is kept
// apart, in CurrencyDef.Display, and is only ever shown.

// MaxSymbolLen is the longest currency symbol, in bytes.
const MaxSymbolLen = 16

// SymbolRule says in words what a currency symbol may be, for hints.
const SymbolRule = "1-16 letters, digits, '_' or '-', starting with a letter; case does not matter (HRS and hrs are the same currency)"

var symbolRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,15}$`)

// ValidSymbol reports whether s is a currency symbol in canonical form:
// 1-16 lowercase ASCII letters, digits, '_' and '-', starting with a letter.
// Entries carry only canonical symbols; CanonicalSymbol folds what a user
// typed.
func ValidSymbol(s string) bool { return symbolRE.MatchString(s) }

// SymbolError is a string that cannot be a currency symbol in any letter
// case.
type SymbolError struct {
	Symbol string // as given
	Reason string // what is wrong with it
}

func (e *SymbolError) Error() string {
	return fmt.Sprintf("currency symbol %q is not valid: %s", echoSymbol(e.Symbol), e.Reason)
}

// CanonicalSymbol folds a symbol as a user typed it (HRS, Hrs) to its
// canonical form (hrs), or says why it cannot be a symbol (*SymbolError).
// Only ASCII letters fold: a symbol is ASCII, so no Unicode case rule can
// make two different strings one currency.
func CanonicalSymbol(s string) (string, error) {
	sym := foldASCII(s)
	if ValidSymbol(sym) {
		return sym, nil
	}
	return "", &SymbolError{Symbol: s, Reason: symbolProblem(sym)}
}

// DefaultDisplay is how a currency without a display form is shown: its
// symbol in uppercase.
func DefaultDisplay(symbol string) string { return strings.ToUpper(symbol) }

// DisplaySymbol is how the currency is shown: the issuer's display form, or
// the symbol in uppercase when it has none.
func (d CurrencyDef) DisplaySymbol() string {
	if d.Display != "" {
		return d.Display
	}
	return DefaultDisplay(d.Symbol)
}

// DisplayFor returns the Display a currency created as typed should carry:
// empty when the default (uppercase) already shows it so, which keeps such
// entries free of the field. typed must fold to a valid symbol.
func DisplayFor(typed string) string {
	if typed == DefaultDisplay(foldASCII(typed)) {
		return ""
	}
	return typed
}

// checkDisplay is the static rule on a definition's display form: empty, or
// the symbol in another letter case, and never the default (then it is left
// out, so one meaning has one encoding).
func (d *CurrencyDef) checkDisplay() error {
	if d.Display == "" {
		return nil
	}
	if foldASCII(d.Display) != d.Symbol {
		return ruleErr("currency %s: display form %q is not the symbol in another letter case", d.Symbol, echoSymbol(d.Display))
	}
	if d.Display == DefaultDisplay(d.Symbol) {
		return ruleErr("currency %s: display form %q is the default (the symbol in uppercase); an entry leaves it out", d.Symbol, d.Display)
	}
	return nil
}

func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// symbolProblem says why a folded string is not a valid symbol.
func symbolProblem(sym string) string {
	switch {
	case sym == "":
		return "it is empty"
	case len(sym) > MaxSymbolLen:
		return fmt.Sprintf("it is %d bytes, at most %d", len(sym), MaxSymbolLen)
	case sym[0] < 'a' || sym[0] > 'z':
		return "it must start with a letter"
	}
	for _, r := range sym {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Sprintf("%q is not allowed (letters, digits, '_' and '-' are)", r)
		}
	}
	return "it is not a symbol" // unreachable: every case is named above
}

// echoSymbol bounds how much of a rejected symbol an error repeats.
func echoSymbol(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

// checkSymbol is the static rule on a symbol in an entry: canonical form
// only, so every node derives the same CurrencyID from it. A symbol that
// is valid but not lowercase (HRS) is refused too, with its canonical form.
func checkSymbol(sym string) error {
	if ValidSymbol(sym) {
		return nil
	}
	if c, err := CanonicalSymbol(sym); err == nil {
		return ruleErr("currency symbol %q is not in canonical form: an entry carries it lowercase, %q", sym, c)
	}
	return ruleErr("currency symbol %q is not valid: %s", echoSymbol(sym), symbolProblem(foldASCII(sym)))
}
