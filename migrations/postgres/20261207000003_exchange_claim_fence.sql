-- Which claim an exchange holds on its public token: set with each claim, checked when the holder
-- renews, releases or records it, so a holder whose claim lapsed and was taken over can change
-- nothing (a fencing token). NULL when nobody holds a claim.
ALTER TABLE public_tokens ADD COLUMN claim_id UUID;
