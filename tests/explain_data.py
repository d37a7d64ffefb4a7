"""A small atomic dataset with titles, years, genres and a Freebase-like KG, whose pairs have
known evidence, for the explanation tests (user 1's training history is Heat, Toy Story and
Big: leave_one_out keeps Babe for validation and Fargo for test)."""

ITEMS = [  # id, title, year, genres
    ("1", "Heat", "1995", "Action Crime Thriller"),
    ("2", "Ronin", "1998", "Action Crime"),
    ("3", "Usual Suspects, The", "1995", "Crime Thriller"),
    ("4", "Toy Story", "1995", "Animation Children's Comedy"),
    ("5", "Babe", "1995", "Children's Comedy Drama"),
    ("6", "Fargo", "1996", "Crime Drama Thriller"),
    ("7", "Big", "1988", "Comedy"),
    ("8", "Collateral", "2004", "Crime Drama Thriller"),
    ("9", "Unlinked Film", "1990", "Drama"),
    ("10", "Aladdin", "1992", "Animation Children's Comedy"),
]
LINKS = {"1": "m.heat", "2": "m.ronin", "3": "m.suspects", "4": "m.toy", "5": "m.babe",
         "6": "m.fargo", "7": "m.big", "8": "m.collateral", "10": "m.aladdin"}
KG = [
    ("m.heat", "film.film.directed_by", "m.mann"),
    ("m.collateral", "film.film.directed_by", "m.mann"),
    ("m.ronin", "film.film.directed_by", "m.frankenheimer"),
    ("m.toy", "film.film.actor", "m.hanks"),
    ("m.big", "film.film.actor", "m.hanks"),
    ("m.aladdin", "film.film.actor", "m.williams"),
    ("m.babe", "film.film.actor", "m.cromwell"),
    ("m.fargo", "film.film.written_by", "m.coens"),
    ("m.collateral", "film.film.produced_by", "m.producer"),
    ("m.suspects", "film.film.produced_by", "m.producer"),
    ("m.heat", "film.film.country", "m.usa"),
    ("m.collateral", "film.film.country", "m.usa"),
]
# user 1: Heat 5, Toy Story 4, Big 3 in training, Babe (valid), Fargo (test)
INTER = [("1", "1", 5, 1), ("1", "4", 4, 2), ("1", "7", 3, 3), ("1", "5", 4, 4), ("1", "6", 5, 5)]
for u in range(2, 12):  # everybody else watched the candidates, so Pop ranks them first
    for t, item in enumerate(["8", "10", "2", "3", "9", "5"]):
        INTER.append((str(u), item, 1 + (u + t) % 5, t + 1))


def write(folder):
    """Write the dataset ``folder.name`` into ``folder`` (a new directory); return it."""
    name = folder.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\t{t}\t{y}\t{g}\n" for i, t, y, g in ITEMS))
    (folder / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in INTER))
    (folder / f"{name}.link").write_text(
        "item_id:token\tentity_id:token\n" + "".join(f"{i}\t{e}\n" for i, e in LINKS.items()))
    (folder / f"{name}.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        + "".join(f"{h}\t{r}\t{t}\n" for h, r, t in KG))
    return folder
