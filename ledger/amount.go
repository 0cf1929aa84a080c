package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrZeroAmount is what ParseAmount's error matches (errors.Is) when the
// amount is zero, which a payment cannot be and a credit limit should not be.
var ErrZeroAmount = errors.New("amount is zero")

// zeroAmountError is ParseAmount's error for a zero amount.
type zeroAmountError struct{ amount string }

func (e *zeroAmountError) Error() string {
	return fmt.Sprintf("amount %q is zero; pay a positive amount", e.amount)
}

func (e *zeroAmountError) Is(target error) bool { return target == ErrZeroAmount }

// ParseAmount reads a positive decimal amount such as "12.50" in a currency
// with the given decimals and returns it in the smallest unit (1250 for two
// decimals). It never goes through floating point: "0.1" is exactly 10
// units. More fractional digits than the currency has are an error, not a
// rounding. An amount of zero is an error that matches ErrZeroAmount.
func ParseAmount(s string, decimals uint8) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty amount")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("amount %q is not a decimal number like 12 or 12.50", s)
	}
	if len(frac) > int(decimals) {
		return 0, fmt.Errorf("amount %q has %d decimal places; this currency has %d", s, len(frac), decimals)
	}
	frac += strings.Repeat("0", int(decimals)-len(frac))
	units, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	if units == 0 {
		return 0, &zeroAmountError{amount: s}
	}
	return units, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// FormatAmount writes units of a currency with the given decimals as an
// exact decimal string: FormatAmount(-1250, 2) is "-12.50".
func FormatAmount(units int64, decimals uint8) string {
	neg := units < 0
	var u uint64
	if neg {
		u = uint64(-(units + 1)) + 1 // safe for math.MinInt64
	} else {
		u = uint64(units)
	}
	s := strconv.FormatUint(u, 10)
	if decimals > 0 {
		if len(s) <= int(decimals) {
			s = strings.Repeat("0", int(decimals)-len(s)+1) + s
		}
		s = s[:len(s)-int(decimals)] + "." + s[len(s)-int(decimals):]
	}
	if neg {
		s = "-" + s
	}
	return s
}
