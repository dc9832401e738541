"""Multi-turn history as token ids: a system message once, then (user, assistant) turns, the oldest
dropped first when the prompt would not leave room for the answer in the cache."""


class PromptTooLongError(ValueError):
    """The new turn alone (with the system message) does not fit the cache."""


def check_fits(prompt_tokens, budget):
    if prompt_tokens > budget:
        raise PromptTooLongError(
            f"the prompt needs {prompt_tokens} tokens but only {budget} fit in the cache beside the answer "
            f"(cache length minus max_new_tokens): shorten the input, lower max_new_tokens or raise max_cache_length")


class Conversation:
    def __init__(self, system_ids=()):
        self.system_ids = list(system_ids)
        self.turns = []  # [(user ids, assistant ids)]
        self.turn_audios = []  # per turn: the user's continuous audios (VITA-Audio-Plus), in placeholder order

    def prompt(self, user_ids, generation_prompt, budget):
        """(prompt ids, note or None): the history + `user_ids` + `generation_prompt` within `budget`
        tokens, dropping the oldest turns (for good) while it does not fit."""
        fixed = len(self.system_ids) + len(user_ids) + len(generation_prompt)
        check_fits(fixed, budget)
        dropped, dropped_tokens = 0, 0
        while fixed + sum(len(u) + len(a) for u, a in self.turns) > budget:
            user, answer = self.turns.pop(0)
            self.turn_audios.pop(0)
            dropped, dropped_tokens = dropped + 1, dropped_tokens + len(user) + len(answer)
        note = None
        if dropped:
            note = (f"dropped the oldest {dropped} turn(s) of the conversation ({dropped_tokens} tokens) so that the "
                    f"prompt fits in {budget} tokens (cache length minus max_new_tokens)")
        ids = self.system_ids + [t for user, answer in self.turns for t in user + answer] + user_ids
        return ids + list(generation_prompt), note

    def add(self, user_ids, assistant_ids, audios=()):
        self.turns.append((list(user_ids), list(assistant_ids)))
        self.turn_audios.append(list(audios))

    def clear(self):
        """Forget every turn (the system message stays)."""
        self.turns.clear()
        self.turn_audios.clear()

    def audios(self):
        """The continuous audios of the kept turns, in prompt order (VITA-Audio-Plus re-encodes them
        at each prefill: their placeholders stay in the history)."""
        return [audio for audios in self.turn_audios for audio in audios]

    def __len__(self):
        return len(self.turns)
