"""Students' records: enrollment (new, transfer within the state by a leaving certificate's QR code, transfer
from another state for review), enrollment periods, leaving with a signed certificate, and guardians."""
