"""fsf's own slot fillers for the intents benchmark, written for it (not from any dataset).

The sentence templates leave some slots to the user's home: device names (`name`), rooms
(`area`), floors (`floor`), and free text (`message`, `search_query`, shopping and to-do
items, timer names and commands, zones). Each language gets the same small set of everyday
values, translated, so a slot never gives a language away by its content. They are plain
nominative forms: templates that inflect a slot (case endings, articles) read slightly
unnatural with them, as they do in the package's own tests.
"""

from __future__ import annotations

__all__ = ["FILLERS", "SLOTS"]

#: Every slot the chosen languages' templates use without defining it.
SLOTS = (
    "name",
    "area",
    "floor",
    "message",
    "search_query",
    "shopping_list_item",
    "todo_list_item",
    "timer_name",
    "timer_command",
    "zone",
)


def _table(*rows: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """One language's fillers, one row per slot in `SLOTS` order (values split on ' | ')."""
    if len(rows) != len(SLOTS):
        raise AssertionError(f"{len(rows)} rows for {len(SLOTS)} slots")
    return {slot: row for slot, row in zip(SLOTS, rows, strict=True)}


FILLERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": _table(
        ("ceiling light", "desk fan", "TV"),
        ("kitchen", "bedroom", "living room"),
        ("ground floor", "first floor"),
        ("dinner is ready", "we leave in five minutes"),
        ("jazz music", "the news"),
        ("milk", "bread"),
        ("water the plants", "call grandma"),
        ("pizza", "tea"),
        ("turn off the oven", "open the blinds"),
        ("work", "school"),
    ),
    "de": _table(
        ("Deckenlampe", "Tischventilator", "Fernseher"),
        ("Küche", "Schlafzimmer", "Wohnzimmer"),
        ("Erdgeschoss", "erster Stock"),
        ("das Essen ist fertig", "wir fahren in fünf Minuten los"),
        ("Jazzmusik", "die Nachrichten"),
        ("Milch", "Brot"),
        ("die Pflanzen gießen", "Oma anrufen"),
        ("Pizza", "Tee"),
        ("schalte den Ofen aus", "öffne die Jalousien"),
        ("Arbeit", "Schule"),
    ),
    "fr": _table(
        ("plafonnier", "ventilateur de bureau", "télé"),
        ("cuisine", "chambre", "salon"),
        ("rez-de-chaussée", "premier étage"),
        ("le dîner est prêt", "nous partons dans cinq minutes"),
        ("musique jazz", "les infos"),
        ("lait", "pain"),
        ("arroser les plantes", "appeler mamie"),
        ("pizza", "thé"),
        ("éteins le four", "ouvre les stores"),
        ("travail", "école"),
    ),
    "es": _table(
        ("lámpara del techo", "ventilador de mesa", "televisión"),
        ("cocina", "dormitorio", "salón"),
        ("planta baja", "primer piso"),
        ("la cena está lista", "salimos en cinco minutos"),
        ("música jazz", "las noticias"),
        ("leche", "pan"),
        ("regar las plantas", "llamar a la abuela"),
        ("pizza", "té"),
        ("apaga el horno", "abre las persianas"),
        ("trabajo", "escuela"),
    ),
    "it": _table(
        ("lampada da soffitto", "ventilatore da tavolo", "televisore"),
        ("cucina", "camera da letto", "soggiorno"),
        ("piano terra", "primo piano"),
        ("la cena è pronta", "usciamo tra cinque minuti"),
        ("musica jazz", "il telegiornale"),
        ("latte", "pane"),
        ("innaffiare le piante", "chiamare la nonna"),
        ("pizza", "tè"),
        ("spegni il forno", "apri le tapparelle"),
        ("lavoro", "scuola"),
    ),
    "nl": _table(
        ("plafondlamp", "bureauventilator", "tv"),
        ("keuken", "slaapkamer", "woonkamer"),
        ("begane grond", "eerste verdieping"),
        ("het eten is klaar", "we vertrekken over vijf minuten"),
        ("jazzmuziek", "het nieuws"),
        ("melk", "brood"),
        ("de planten water geven", "oma bellen"),
        ("pizza", "thee"),
        ("zet de oven uit", "open de rolluiken"),
        ("werk", "school"),
    ),
    "ru": _table(
        ("потолочная лампа", "настольный вентилятор", "телевизор"),
        ("кухня", "спальня", "гостиная"),
        ("первый этаж", "второй этаж"),
        ("ужин готов", "мы выходим через пять минут"),
        ("джаз", "новости"),
        ("молоко", "хлеб"),
        ("полить цветы", "позвонить бабушке"),
        ("пицца", "чай"),
        ("выключи духовку", "открой жалюзи"),
        ("работа", "школа"),
    ),
    "pl": _table(
        ("lampa sufitowa", "wentylator biurkowy", "telewizor"),
        ("kuchnia", "sypialnia", "salon"),
        ("parter", "pierwsze piętro"),
        ("obiad gotowy", "wychodzimy za pięć minut"),
        ("muzyka jazzowa", "wiadomości"),
        ("mleko", "chleb"),
        ("podlać kwiaty", "zadzwonić do babci"),
        ("pizza", "herbata"),
        ("wyłącz piekarnik", "otwórz rolety"),
        ("praca", "szkoła"),
    ),
    "bg": _table(
        ("лампа на тавана", "настолен вентилатор", "телевизор"),
        ("кухня", "спалня", "хол"),
        ("партер", "първи етаж"),
        ("вечерята е готова", "тръгваме след пет минути"),
        ("джаз музика", "новините"),
        ("мляко", "хляб"),
        ("да полея цветята", "да се обадя на баба"),
        ("пица", "чай"),
        ("изключи фурната", "отвори щорите"),
        ("работа", "училище"),
    ),
    "el": _table(
        ("φωτιστικό οροφής", "ανεμιστήρας γραφείου", "τηλεόραση"),
        ("κουζίνα", "υπνοδωμάτιο", "σαλόνι"),
        ("ισόγειο", "πρώτος όροφος"),
        ("το φαγητό είναι έτοιμο", "φεύγουμε σε πέντε λεπτά"),
        ("τζαζ μουσική", "οι ειδήσεις"),
        ("γάλα", "ψωμί"),
        ("να ποτίσω τα φυτά", "να πάρω τηλέφωνο τη γιαγιά"),
        ("πίτσα", "τσάι"),
        ("κλείσε τον φούρνο", "άνοιξε τα στόρια"),
        ("δουλειά", "σχολείο"),
    ),
    "hu": _table(
        ("mennyezeti lámpa", "asztali ventilátor", "tévé"),
        ("konyha", "hálószoba", "nappali"),
        ("földszint", "első emelet"),
        ("kész a vacsora", "öt perc múlva indulunk"),
        ("jazz zene", "a hírek"),
        ("tej", "kenyér"),
        ("meglocsolni a növényeket", "felhívni a nagymamát"),
        ("pizza", "tea"),
        ("kapcsold ki a sütőt", "nyisd ki a redőnyt"),
        ("munka", "iskola"),
    ),
    "ar": _table(
        ("مصباح السقف", "مروحة المكتب", "التلفاز"),
        ("المطبخ", "غرفة النوم", "غرفة المعيشة"),
        ("الطابق الأرضي", "الطابق الأول"),
        ("العشاء جاهز", "سنغادر بعد خمس دقائق"),
        ("موسيقى الجاز", "الأخبار"),
        ("حليب", "خبز"),
        ("سقي النباتات", "الاتصال بالجدة"),
        ("بيتزا", "شاي"),
        ("أطفئ الفرن", "افتح الستائر"),
        ("العمل", "المدرسة"),
    ),
    "th": _table(
        ("ไฟเพดาน", "พัดลมตั้งโต๊ะ", "ทีวี"),
        ("ห้องครัว", "ห้องนอน", "ห้องนั่งเล่น"),
        ("ชั้นล่าง", "ชั้นหนึ่ง"),
        ("อาหารเย็นพร้อมแล้ว", "เราจะออกไปในอีกห้านาที"),
        ("เพลงแจ๊ส", "ข่าว"),
        ("นม", "ขนมปัง"),
        ("รดน้ำต้นไม้", "โทรหาคุณยาย"),
        ("พิซซ่า", "ชา"),
        ("ปิดเตาอบ", "เปิดม่าน"),
        ("ที่ทำงาน", "โรงเรียน"),
    ),
    "zh": _table(
        ("吸顶灯", "台式风扇", "电视"),
        ("厨房", "卧室", "客厅"),
        ("一楼", "二楼"),
        ("晚饭好了", "我们五分钟后出发"),
        ("爵士乐", "新闻"),
        ("牛奶", "面包"),
        ("给植物浇水", "给奶奶打电话"),
        ("披萨", "茶"),
        ("关掉烤箱", "打开百叶窗"),
        ("公司", "学校"),
    ),
}
