package discovery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

func TestDIDValidator(t *testing.T) {
	id, err := did.Generate(time.Unix(1_700_000_000, 0))
	require.NoError(t, err)
	other, err := did.Generate(time.Unix(1_700_000_000, 0))
	require.NoError(t, err)
	v1, err := id.Binding.Marshal()
	require.NoError(t, err)
	require.NoError(t, id.Rotate(time.Unix(1_700_000_100, 0)))
	v2, err := id.Binding.Marshal()
	require.NoError(t, err)
	otherVal, err := other.Binding.Marshal()
	require.NoError(t, err)
	key := DIDRecordKey(id.DID)

	var v DIDValidator
	require.NoError(t, v.Validate(key, v1))
	require.NoError(t, v.Validate(key, v2))
	require.ErrorContains(t, v.Validate(key, otherVal), "signed for")
	require.Error(t, v.Validate("/pk/"+id.DID.String(), v1))
	require.Error(t, v.Validate("/icn-did/not-a-did", v1))
	require.Error(t, v.Validate(key, []byte("garbage")))
	tampered := append([]byte{}, v2...)
	tampered[len(tampered)/2] ^= 1
	require.Error(t, v.Validate(key, tampered))

	i, err := v.Select(key, [][]byte{v1, []byte("x"), v2, otherVal})
	require.NoError(t, err)
	require.Equal(t, 2, i, "the newest binding wins")
	i, err = v.Select(key, [][]byte{v2, v1})
	require.NoError(t, err)
	require.Equal(t, 0, i)
	_, err = v.Select(key, [][]byte{otherVal, []byte("x")})
	require.Error(t, err)
}

func FuzzDIDValidator(f *testing.F) {
	id, err := did.Generate(time.Unix(1_700_000_000, 0))
	require.NoError(f, err)
	val, err := id.Binding.Marshal()
	require.NoError(f, err)
	f.Add(DIDRecordKey(id.DID), val)
	f.Add("/icn-did/x", []byte("{}"))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		var v DIDValidator
		if v.Validate(key, value) == nil {
			d, err := didFromKey(key)
			require.NoError(t, err)
			bd, err := did.UnmarshalBinding(value)
			require.NoError(t, err)
			require.Equal(t, d, bd.DID)
		}
		_, _ = v.Select(key, [][]byte{value, value})
	})
}
